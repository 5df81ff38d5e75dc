"""Reading a CPU's int8 instructions, and the weight range an artifact meant for it gets."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from imgcaption.backends.cpu_int8 import cpu_flags, int8_target, reduce_range

EPYC_AVX2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma bmi2 sha_ni\n"
XEON_VNNI = "model name\t: Intel Xeon\nflags\t\t: avx avx2 avx512f avx512_vnni avx512_bf16 amx_tile\n"
GRAVITON2 = "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes crc32 atomics asimddp lrcpc\n"


@pytest.mark.parametrize(
    ("cpuinfo", "flags", "target"),
    [
        (EPYC_AVX2, {"avx2"}, "avx2"),
        (XEON_VNNI, {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"}, "vnni"),
        (GRAVITON2, {"asimddp"}, "arm"),
        ("", set(), "avx2"),
    ],
)
def test_a_cpu_s_flags_decide_its_int8_target(cpuinfo: str, flags: set[str], target: str, tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert cpu_flags(path) == flags
    assert int8_target(flags) == target


def test_an_unreadable_cpuinfo_is_no_flags_not_an_error(tmp_path: Path) -> None:
    assert cpu_flags(tmp_path / "missing") == set()


def test_only_cpus_without_int8_dot_products_get_seven_bit_weights() -> None:
    assert [reduce_range(target) for target in ("avx2", "vnni", "arm")] == [True, False, False]


def test_the_cpu_is_named_by_cpuinfo_s_model_name_or_else_by_the_platform(tmp_path: Path) -> None:
    from imgcaption.backends.cpu_int8 import cpu_model_name

    x86, arm = tmp_path / "x86", tmp_path / "arm"
    x86.write_text(EPYC_AVX2)
    arm.write_text(GRAVITON2)
    assert cpu_model_name(x86) == "AMD EPYC"
    assert cpu_model_name(arm) == (platform.processor() or "unknown")  # Arm's cpuinfo has no model name
    assert cpu_model_name(tmp_path / "missing") == (platform.processor() or "unknown")
