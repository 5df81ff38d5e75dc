"""Where a model computes: ``auto`` picks CUDA, then Apple's MPS, then the CPU; and the GPU's default precision."""

from __future__ import annotations

import re
from typing import Any

from imgcaption.errors import ConfigurationError
from imgcaption.generation import Precision

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def resolve_device(device: str) -> str:
    """``auto`` made concrete, or the device asked for once checked to exist (a ConfigurationError otherwise)."""
    import torch

    if not DEVICE_PATTERN.match(device):
        raise ConfigurationError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if device.startswith("cuda"):
        if not cuda:
            raise ConfigurationError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigurationError(f"device {device!r} asked for, but torch sees {torch.cuda.device_count()} GPU(s)")
    if device == "mps" and not mps:
        raise ConfigurationError("device 'mps' asked for, but torch sees no Apple GPU; use --device cpu")
    return device


def gpu_precision(device: str) -> Precision:
    """fp16 on a GPU, bf16 where the GPU computes it natively (same range as fp32: no overflow in long captions)."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp16"


def torch_dtype(precision: Precision) -> Any:
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
