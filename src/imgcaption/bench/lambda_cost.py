"""What a caption costs on AWS Lambda, from a time per image measured at 1 and 2 threads.

Lambda sells memory and gives CPU in proportion: 1 vCPU per 1,769 MB (up to 6 vCPUs at 10,240 MB). So a size
buys a thread count, the measured time at that thread count gives GB-seconds per image, and the published
GB-second price gives the cost. Thread counts above the 2 measured here are extrapolated with Amdahl's law fitted to
the 1→2 thread speed-up, and marked as such. arm (Graviton) speed was not measured: its column assumes the x86
time per vCPU, which is an assumption, not a measurement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Architecture = Literal["x86_64", "arm64"]

MB_PER_VCPU = 1769
MAX_VCPUS = 6
PRICE_PER_GB_SECOND: dict[Architecture, float] = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
"""us-east-1 on-demand, first pricing tier (https://aws.amazon.com/lambda/pricing/)."""
PRICE_PER_REQUEST = 0.20 / 1_000_000
MEMORY_SIZES_MB: tuple[int, ...] = (1024, 1536, 1769, 2048, 3008, 4096, 5120, 6144, 8192, 10240)
"""2–10 GB as the issue asks, and below: 1,769 MB is exactly one vCPU, all a one-thread worker can use."""
CONCURRENCIES: tuple[int, ...] = (1, 2, 5, 10, 25, 50)


@dataclass(frozen=True, slots=True)
class MeasuredSpeed:
    """Seconds per image at 1 and (if usable) 2 threads, for one mode and batch size, measured on one machine.

    ``seconds_2_threads`` is ``None`` when the 2-thread run was no faster than 1 thread (a shared machine makes
    threads wait for each other): sizes with 2+ vCPUs are then assumed no faster than 1 thread, and not measured.
    """

    seconds_1_thread: float
    seconds_2_threads: float | None
    batch_size: int

    @property
    def parallel_fraction(self) -> float:
        """Amdahl's p from the 1→2 thread speed-up s = t1/t2: s = 1/((1-p) + p/2); 0 without a 2-thread figure."""
        if self.seconds_2_threads is None:
            return 0.0
        speedup = self.seconds_1_thread / self.seconds_2_threads
        return min(1.0, max(0.0, 2 * (1 - 1 / speedup)))

    def seconds_at(self, vcpus: float) -> tuple[float, bool]:
        """(seconds per image, measured?) with ``floor(vcpus)`` threads; a fractional vCPU share below 1 slows it."""
        if vcpus < 1:
            return self.seconds_1_thread / vcpus, False
        threads = min(MAX_VCPUS, math.floor(vcpus))
        if threads == 1:
            return self.seconds_1_thread, True
        if threads == 2 and self.seconds_2_threads is not None:
            return self.seconds_2_threads, True
        p = self.parallel_fraction
        return self.seconds_1_thread * ((1 - p) + p / threads), False


@dataclass(frozen=True, slots=True)
class LambdaCost:
    memory_mb: int
    architecture: Architecture
    vcpus: float
    threads: int
    seconds_per_image: float
    measured: bool
    dollars_per_million: float


def vcpus_for(memory_mb: int) -> float:
    return min(MAX_VCPUS, memory_mb / MB_PER_VCPU)


def cost_per_million(
    memory_mb: int, seconds_per_image: float, *, architecture: Architecture = "x86_64", batch_size: int = 1
) -> float:
    """Dollars per million images: GB-seconds of compute plus one request per batch."""
    compute = memory_mb / 1024 * seconds_per_image * PRICE_PER_GB_SECOND[architecture]
    return 1_000_000 * (compute + PRICE_PER_REQUEST / batch_size)


def cost_table(
    speed: MeasuredSpeed,
    sizes: Sequence[int] = MEMORY_SIZES_MB,
    architectures: Sequence[Architecture] = ("x86_64", "arm64"),
) -> list[LambdaCost]:
    rows = []
    for memory_mb in sizes:
        vcpus = vcpus_for(memory_mb)
        seconds, measured = speed.seconds_at(vcpus)
        for architecture in architectures:
            rows.append(
                LambdaCost(
                    memory_mb=memory_mb,
                    architecture=architecture,
                    vcpus=round(vcpus, 2),
                    threads=max(1, min(MAX_VCPUS, math.floor(vcpus))),
                    seconds_per_image=seconds,
                    measured=measured and architecture == "x86_64",
                    dollars_per_million=cost_per_million(
                        memory_mb, seconds, architecture=architecture, batch_size=speed.batch_size
                    ),
                )
            )
    return rows


def recommend(rows: Sequence[LambdaCost], *, min_memory_mb: int = 0, measured_only: bool = True) -> LambdaCost:
    """The cheapest size per image that fits in memory; among equal costs (within 2%), the faster one."""
    candidates = [r for r in rows if r.memory_mb >= min_memory_mb and (r.measured or not measured_only)]
    if not candidates:
        raise ValueError("no memory size satisfies the constraints")
    cheapest = min(r.dollars_per_million for r in candidates)
    near = [r for r in candidates if r.dollars_per_million <= cheapest * 1.02]
    return min(near, key=lambda r: (r.seconds_per_image, r.dollars_per_million))


@dataclass(frozen=True, slots=True)
class Capacity:
    memory_mb: int
    concurrency: int
    images_per_hour: float
    dollars_per_hour: float


def capacity_table(
    speed: MeasuredSpeed,
    sizes: Sequence[int] = MEMORY_SIZES_MB,
    concurrencies: Sequence[int] = CONCURRENCIES,
    architecture: Architecture = "x86_64",
) -> list[Capacity]:
    """Images per hour and dollars per busy hour for ``concurrency`` workers that never wait for work."""
    rows = []
    for memory_mb in sizes:
        seconds, _ = speed.seconds_at(vcpus_for(memory_mb))
        for concurrency in concurrencies:
            images = concurrency * 3600 / seconds
            dollars = concurrency * 3600 * memory_mb / 1024 * PRICE_PER_GB_SECOND[architecture]
            dollars += images / speed.batch_size * PRICE_PER_REQUEST
            rows.append(Capacity(memory_mb, concurrency, images, dollars))
    return rows
