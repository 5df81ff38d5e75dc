"""``imgcaption optimize`` on a model it cannot build an artifact of: a usage error (exit 2) that says what to do.

Artifacts hold vit-gpt2 models only; the other families run in int8 with ``--precision int8``, which quantizes their
Linear layers at load time. The refusal is read from ``config.json`` before any weights load.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgcaption.backends.families import FAMILIES
from imgcaption.testing.family_models import FAMILY_MODEL_FACTORIES
from imgcaption_cli.main import cli


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {name: factory(root / name) for name, factory in FAMILY_MODEL_FACTORIES.items()}


@pytest.mark.parametrize("backend", ["onnx", "torch"])
@pytest.mark.parametrize("family", list(FAMILY_MODEL_FACTORIES))
def test_another_family_is_refused_with_exit_2_naming_it_and_the_int8_mode_it_has(
    family: str, backend: str, family_dirs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "artifact"
    result = CliRunner().invoke(cli, ["optimize", str(family_dirs[family]), str(out), "--backend", backend])
    assert result.exit_code == 2, result.output
    assert f"is a {family} model ({FAMILIES[family].model_class})" in result.output
    assert "vit-gpt2 models only" in result.output
    assert "--precision int8" in result.output
    assert not out.exists()


def test_the_refusal_reads_only_config_json(family_dirs: dict[str, Path], tmp_path: Path) -> None:
    """A copy without weights, processor or tokenizer is refused the same way: nothing else was read."""
    config_only = tmp_path / "blip-config-only"
    config_only.mkdir()
    shutil.copyfile(family_dirs["blip"] / "config.json", config_only / "config.json")
    result = CliRunner().invoke(cli, ["optimize", str(config_only), str(tmp_path / "artifact"), "--backend", "torch"])
    assert result.exit_code == 2
    assert "is a blip model" in result.output


def test_a_directory_that_is_no_model_is_a_usage_error_too(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(cli, ["optimize", str(empty), str(tmp_path / "artifact"), "--backend", "torch"])
    assert result.exit_code == 2
    assert "config.json" in result.output
