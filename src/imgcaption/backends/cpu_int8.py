"""Which int8 dot-product instructions a CPU has, and the weight range an int8 artifact for it should use.

The flags come from ``/proc/cpuinfo`` (``flags`` on x86, ``Features`` on Arm). Why the range matters: on x86 CPUs
without VNNI, int8 GEMMs multiply unsigned activations by signed weights with ``vpmaddubsw``, which adds pairs of
products into 16 bits and saturates when both are near their extremes; quantizing weights to 7 bits
(``reduce_range``) keeps every pair in range at the cost of one bit of weight precision. VNNI, AMX and Arm's
dot-product instructions accumulate in 32 bits, so artifacts meant for them keep all 8 bits.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Literal, get_args

Int8Target = Literal["avx2", "vnni", "arm"]
"""The kinds of int8 hardware an artifact can be quantized for: x86 without VNNI, x86 with VNNI or AMX, Arm."""
INT8_TARGETS: tuple[str, ...] = get_args(Int8Target)

INT8_FLAGS = frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8"}) | {
    "asimddp",  # Arm dotprod
    "i8mm",  # Arm int8 matrix multiply
}
"""The ``/proc/cpuinfo`` flags that decide int8 speed (and that benchmark reports name)."""

_LADDER = (
    ("amx_int8", "AMX"),
    ("avx512_vnni", "AVX-512 VNNI"),
    ("avx_vnni", "AVX-VNNI"),
    ("avx2", "AVX2"),
    ("i8mm", "Arm i8mm"),
    ("asimddp", "Arm dotprod"),
)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """This CPU's :data:`INT8_FLAGS` (empty where ``/proc/cpuinfo`` cannot be read, e.g. on macOS)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):  # x86, Arm
            return {flag for flag in line.split(":", 1)[1].split() if flag in INT8_FLAGS}
    return set()


def cpu_model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's ``model name`` from ``/proc/cpuinfo`` (x86), else what :func:`platform.processor` says (Arm, macOS)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def int8_instruction_set(flags: set[str]) -> str:
    """The best int8 dot-product instructions the CPU offers: what sets the int8 GEMM floor.

    AMX tiles, then AVX-512 VNNI, AVX-VNNI (AVX2 width), plain AVX2 (no int8 dot product: multiply-add in 16 bits),
    and on Arm i8mm, then dotprod (``asimddp``).
    """
    for flag, name in _LADDER:
        if flag in flags:
            return name
    return "none of AVX2, VNNI, AMX, dotprod"


def int8_target(flags: set[str]) -> Int8Target:
    """The :data:`Int8Target` of a CPU with these flags (an x86 CPU without VNNI, or an unknown one: ``avx2``)."""
    if flags & {"amx_int8", "avx512_vnni", "avx_vnni"}:
        return "vnni"
    if flags & {"asimddp", "i8mm"}:
        return "arm"
    return "avx2"


def reduce_range(target: Int8Target) -> bool:
    """Whether weights for ``target`` are quantized to 7 bits (see the module docstring)."""
    return target == "avx2"
