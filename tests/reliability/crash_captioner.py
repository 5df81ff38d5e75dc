"""A captioner whose model ends the whole process on one chosen image, as an out-of-memory kill, a segfault in native
code or a hard timeout would: no exception, no cleanup, no response.

Loaded by ``imgcaption worker`` through ``IMGCAPTION_CAPTIONER_FACTORY=crash_captioner:build`` (with this directory
on ``PYTHONPATH``). ``CRASH_ON`` is the culprit's colour as ``rrggbb``; ``CRASH_HOW`` is how it dies:

* ``exit``: ``os._exit`` (what the Lambda runtime reports as "Runtime exited").
* ``kill``: SIGKILL to itself (the kernel's out-of-memory killer, Lambda's memory limit).
* ``segfault``: a read of address 0 through ctypes (a crash in a codec or an inference library).
* ``allocate``: lowers its ``RLIMIT_AS`` and allocates past it; Python survives that one as a ``MemoryError``.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
from collections.abc import Sequence
from typing import Any

from reliability_support import FakeCaptioner

from imgcaption.generation import GenerationOptions

CRASH_EXIT_CODE = 70


class CrashingCaptioner(FakeCaptioner):
    def __init__(self, culprit: tuple[int, int, int], how: str) -> None:
        super().__init__()
        self.culprit = culprit
        self.how = how

    def forward(self, pixel_values: Any, generation: GenerationOptions) -> Any:
        if any(image.convert("RGB").getpixel((0, 0)) == self.culprit for image in pixel_values):
            self._die()
        return super().forward(pixel_values, generation)

    def _die(self) -> None:
        if self.how == "exit":
            os._exit(CRASH_EXIT_CODE)
        if self.how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.how == "segfault":
            ctypes.string_at(0)
        if self.how == "allocate":
            _allocate_past_the_address_space_limit()
        raise AssertionError(f"unknown CRASH_HOW {self.how!r}")


def _allocate_past_the_address_space_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_address_space_in_use() + 256 * 2**20, hard))
    try:
        bytearray(8 * 2**30)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _address_space_in_use() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    value = int(hex_colour, 16)
    return (value >> 16, (value >> 8) & 0xFF, value & 0xFF)


def build(settings: Any) -> CrashingCaptioner:
    """The factory ``IMGCAPTION_CAPTIONER_FACTORY`` names."""
    return CrashingCaptioner(_rgb(os.environ["CRASH_ON"]), os.environ.get("CRASH_HOW", "exit"))


def hex_colour(rgb: Sequence[int]) -> str:
    return "".join(f"{channel:02x}" for channel in rgb)
