"""Sidecars where training and photo tools read them: another extension, a trigger word, and existing ones kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from imgcaption.local.sidecars import SidecarWriter
from imgcaption_cli.main import cli


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "dataset"
    folder.mkdir()
    for name, color in (("a.jpg", "red"), ("b.jpg", "blue"), ("c.png", "green")):
        Image.new("RGB", (40, 30), color).save(folder / name)
    return folder


def run(tiny_model_dir: Path, *args: str | Path) -> Result:
    env = {"IMGCAPTION_MODEL": str(tiny_model_dir), "IMGCAPTION_THREADS": "1"}
    return CliRunner().invoke(cli, ["caption", *map(str, args)], env=env, catch_exceptions=False)


def test_a_kohya_style_dataset_gets_caption_files_with_the_trigger_word(tiny_model_dir: Path, photos: Path) -> None:
    result = run(tiny_model_dir, photos, "--sidecar", "--sidecar-ext", ".caption", "--prefix", "sks_dog, ")
    assert result.exit_code == 0, result.output
    captions = {path.name: path.read_text() for path in sorted(photos.glob("*.caption"))}
    assert sorted(captions) == ["a.caption", "b.caption", "c.caption"]
    assert not list(photos.glob("*.txt"))
    for text in captions.values():
        assert text.startswith("sks_dog, ") and text.endswith("\n") and len(text) > len("sks_dog, \n")


def test_skip_existing_with_sidecars_leaves_images_that_already_have_one(tiny_model_dir: Path, photos: Path) -> None:
    (photos / "b.txt").write_text("my own words\n")
    result = run(tiny_model_dir, photos, "--sidecar", "--skip-existing", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    captioned = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(captioned) == 2 and all("b.jpg" not in line for line in captioned)
    assert (photos / "b.txt").read_text() == "my own words\n"
    assert "1 already captioned" in result.stderr


def test_sidecar_text_options_need_sidecar_and_the_extension_stays_a_plain_name(
    tiny_model_dir: Path, photos: Path
) -> None:
    assert "--prefix only applies to --sidecar" in run(tiny_model_dir, photos, "--prefix", "x").output
    bad = run(tiny_model_dir, photos, "--sidecar", "--sidecar-ext", "/../../etc/passwd")
    assert bad.exit_code == 2 and "--sidecar-ext" in bad.output
    with pytest.raises(ValueError, match="sidecar extension"):
        SidecarWriter(extension="txt")
