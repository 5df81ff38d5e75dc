"""The built wheel, installed into a fresh virtual environment with the ONNX runtime only, captions a photo.

This is what a user gets from ``pip install "imgcaption-toolkit[cli,onnx]"``: no torch, no transformers, no test
assets, no repository on the path. The venv is made once per session (about a minute, mostly pip).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from imgcaption.distribution import DISTRIBUTION

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(ROOT)]
    subprocess.run(command, check=True, timeout=300)
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding the wheel with ``[cli,onnx]``, pinned by our constraints; its ``bin`` directory."""
    home = tmp_path_factory.mktemp("fresh-venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt")]
    subprocess.run([*install, f"{wheel}[cli,onnx]"], check=True, timeout=600, env=_env(home))
    return home / "bin"


def _env(home: Path) -> dict[str, str]:
    """No PYTHONPATH (pytest's would put the checkout on the path), a HOME of its own, nothing from the hub."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "IMGCAPTION_", "VIRTUAL_ENV"))}
    return {**environment, "HOME": str(home), "HF_HUB_OFFLINE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def test_the_wheel_carries_the_license_and_typing_marker_and_no_test_assets(wheel: Path) -> None:
    assert wheel.name.startswith(DISTRIBUTION.replace("-", "_") + "-")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names), names
    assert "imgcaption/py.typed" in names
    assert not [name for name in names if name.startswith(("tests/", "examples/", "benchmarks/", "deploy/"))]
    metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    for line in ("Name: imgcaption-toolkit", "License-Expression: Apache-2.0", "Classifier: Typing :: Typed"):
        assert line in text, line


def test_the_onnx_install_has_no_torch_and_reports_its_version(fresh_venv: Path, tmp_path: Path) -> None:
    probe = "import importlib.util as u, imgcaption; print(imgcaption.__version__, u.find_spec('torch') is None)"
    shown = subprocess.run(
        [str(fresh_venv / "python"), "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=_env(tmp_path)
    )
    assert shown.returncode == 0, shown.stderr
    version, torch_absent = shown.stdout.split()
    assert torch_absent == "True"
    assert not version.startswith("0+"), version
    cli = subprocess.run([str(fresh_venv / "imgcaption"), "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert version in cli.stdout, cli.stdout + cli.stderr


def test_a_photo_is_captioned_from_an_onnx_artifact_without_torch(
    fresh_venv: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from imgcaption import Captioner
    from imgcaption.backends.export import save_onnx_artifact

    artifact = save_onnx_artifact(tiny_model_dir, tmp_path_factory.mktemp("artifact") / "tiny-onnx")
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), (200, 40, 40)).save(photo)
    command = [str(fresh_venv / "imgcaption"), "caption", str(photo), "--model", str(artifact), "--format", "jsonl"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=_env(tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert (record["status"], record["precision"]) == ("ok", "int8")
    assert record["text"] == Captioner.from_pretrained(str(artifact)).caption(photo).text


def test_a_model_that_needs_torch_names_the_extra_to_install(
    fresh_venv: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32)).save(photo)
    command = [str(fresh_venv / "imgcaption"), "caption", str(photo), "--model", str(tiny_model_dir)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=_env(tmp_path), timeout=300)
    assert result.returncode != 0
    assert f"pip install '{DISTRIBUTION}[torch]'" in result.stderr, result.stderr
