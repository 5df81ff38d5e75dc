"""The trained scene captioner end to end: the right caption reaches the right record.

Random-weight models prove plumbing; this model captions generated scenes exactly ("a red circle on the left of a
blue square"), so these tests can assert wording: EXIF orientation changes which words are right, batching must keep
each caption with its own image, and the CLI must store each caption under its own file.
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from imgcaption import Caption, Captioner
from imgcaption.testing.scene_model import reliably_captioned_seeds, scene_captioner_path
from imgcaption.testing.scenes import Scene, generate_scene, stored_for_orientation
from imgcaption_cli.main import cli


@pytest.fixture(scope="module")
def scene_captioner() -> Captioner:
    return Captioner.from_pretrained(str(scene_captioner_path()), threads=1)


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return [generate_scene(seed) for seed in reliably_captioned_seeds(12)]


def with_exif_orientation(scene: Scene, orientation: int) -> bytes:
    """The scene as a camera would store it when held rotated: other pixels, plus the tag that undoes that."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored_for_orientation(scene.image, orientation).save(buffer, "PNG", exif=exif.tobytes())
    return buffer.getvalue()


def test_each_scene_is_captioned_exactly(scene_captioner: Captioner, scenes: list[Scene]) -> None:
    results = scene_captioner.caption_many([scene.image for scene in scenes], batch_size=5)
    assert [result.text for result in results if isinstance(result, Caption)] == [scene.caption for scene in scenes]


@pytest.mark.parametrize("orientation", range(2, 9))
def test_a_scene_stored_with_an_exif_orientation_captions_as_the_upright_scene(
    scene_captioner: Captioner, scenes: list[Scene], orientation: int
) -> None:
    stored = [with_exif_orientation(scene, orientation) for scene in scenes[:6]]
    captions = [result.text for result in scene_captioner.caption_many(stored) if isinstance(result, Caption)]
    assert captions == [scene.caption for scene in scenes[:6]]
    # The test has teeth: the same pixels without the tag are a different scene with other words.
    untagged = [stored_for_orientation(scene.image, orientation) for scene in scenes[:6]]
    assert [r.text for r in scene_captioner.caption_many(untagged) if isinstance(r, Caption)] != captions


def test_a_mixed_batch_keeps_every_caption_with_its_own_image(scene_captioner: Captioner, scenes: list[Scene]) -> None:
    inputs: list[object] = [scene.image for scene in scenes[:7]]
    inputs.insert(3, b"\x89PNG\r\n\x1a\n broken in the middle of a batch")
    results = scene_captioner.caption_many(inputs, batch_size=8)  # type: ignore[arg-type]
    one_by_one = [scene_captioner.caption(scene.image).text for scene in scenes[:7]]
    assert [r.status for r in results] == ["ok"] * 3 + ["failed"] + ["ok"] * 4
    captions = [r.text for r in results if isinstance(r, Caption)]
    assert captions == one_by_one == [scene.caption for scene in scenes[:7]]


def test_the_cli_stores_each_files_own_caption(scenes: list[Scene], tmp_path: Path) -> None:
    folder = tmp_path / "scenes"
    folder.mkdir()
    expected: dict[str, str] = {}
    for index, scene in enumerate(scenes[:6]):
        name = f"scene-{index}.png"
        orientation = 1 + index  # orientations 1–6, so some files need the EXIF transpose
        (folder / name).write_bytes(with_exif_orientation(scene, orientation))
        expected[name] = scene.caption
    db = tmp_path / "captions.db"
    env = {"IMGCAPTION_MODEL": str(scene_captioner_path()), "IMGCAPTION_THREADS": "1"}
    result = CliRunner().invoke(cli, ["caption", str(folder), "--db", str(db), "--batch-size", "4"], env=env)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT uri, text FROM outcomes WHERE status = 'ok'").fetchall()
    assert {Path(uri).name: text for uri, text in rows} == expected
