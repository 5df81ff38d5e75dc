"""Settings, generation options and thread counts: defaults reproduce the original system."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from imgcaption import Caption, CaptionFailure, GenerationOptions, Settings
from imgcaption.backends import threads
from imgcaption.results import caption_result_adapter
from imgcaption.settings import DEFAULT_MODEL, DEFAULT_REVISION


def test_default_generation_is_the_original_systems() -> None:
    assert GenerationOptions().generate_kwargs() == {"num_beams": 4, "do_sample": False, "max_length": 16}


def test_max_new_tokens_replaces_max_length() -> None:
    options = GenerationOptions().with_overrides(max_new_tokens=20, num_beams=1)
    assert options.generate_kwargs() == {"num_beams": 1, "do_sample": False, "max_new_tokens": 20}
    assert options.key == "beams1-new20"
    assert GenerationOptions().key == "beams4-len16"


def test_generation_options_are_validated() -> None:
    with pytest.raises(ValidationError):
        GenerationOptions(num_beams=0)
    with pytest.raises(ValidationError):
        GenerationOptions(max_length=None)


def test_settings_come_from_imgcaption_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IMGCAPTION_MODEL", str(tmp_path))
    monkeypatch.setenv("IMGCAPTION_NUM_BEAMS", "1")
    monkeypatch.setenv("IMGCAPTION_MAX_NEW_TOKENS", "12")
    monkeypatch.setenv("IMGCAPTION_MAX_PIXELS", "1000")
    settings = Settings()
    assert settings.model == str(tmp_path)
    assert settings.generation == GenerationOptions(num_beams=1, max_new_tokens=12)
    assert settings.max_pixels == 1000


def test_the_default_model_is_pinned_to_a_revision() -> None:
    settings = Settings()
    assert settings.model == DEFAULT_MODEL
    assert settings.resolved_revision == DEFAULT_REVISION
    assert Settings(model="./my-model").resolved_revision is None


def test_results_round_trip_through_json() -> None:
    caption = Caption(source="a.jpg", model="m", text="a cat", width=2, height=3, elapsed_ms=1.5)
    failure = CaptionFailure(source="b.jpg", model="m", error_type="ImageDecodeError", message="truncated")
    for result in (caption, failure):
        assert caption_result_adapter.validate_json(result.model_dump_json()) == result


def test_cpu_count_honours_a_cgroup_quota(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    monkeypatch.setattr(threads, "CGROUP_V2_CPU_MAX", cpu_max)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _pid: set(range(64)))
    cpu_max.write_text("150000 100000\n")  # 1.5 CPUs
    assert threads.available_cpus() == 2
    cpu_max.write_text("max 100000\n")
    assert threads.available_cpus() == 64
