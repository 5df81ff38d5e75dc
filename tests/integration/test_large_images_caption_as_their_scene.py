"""A large upload is captioned as the scene it shows: reducing it to what the model needs keeps the words.

The trained scene captioner captions generated 224×224 scenes exactly. Blown up twelve times (2688×2688 PNGs, reduced
by the loader to 896×896 before the model's own resize to 224), and stored rotated with an EXIF orientation, each
must still get its scene's caption, with the upload's real size in the record.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from imgcaption import Caption, Captioner
from imgcaption.testing.scene_model import reliably_captioned_seeds, scene_captioner_path
from imgcaption.testing.scenes import IMAGE_SIZE, Scene, generate_scene, stored_for_orientation

SCALE = 12


@pytest.fixture(scope="module")
def scene_captioner() -> Captioner:
    return Captioner.from_pretrained(str(scene_captioner_path()), threads=1)


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return [generate_scene(seed) for seed in reliably_captioned_seeds(6)]


def blown_up(scene: Scene, orientation: int = 1) -> bytes:
    """The scene at ``SCALE``× its size as a PNG, stored as a camera held rotated would store it."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    big = scene.image.resize((IMAGE_SIZE * SCALE, IMAGE_SIZE * SCALE), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    stored_for_orientation(big, orientation).save(buffer, "PNG", exif=exif.tobytes(), compress_level=1)
    return buffer.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("orientation", [1, 6])
def test_a_blown_up_scene_is_captioned_as_the_scene(
    scene_captioner: Captioner, scenes: list[Scene], orientation: int
) -> None:
    results = scene_captioner.caption_many([blown_up(scene, orientation) for scene in scenes], batch_size=6)
    captions = [result for result in results if isinstance(result, Caption)]
    assert [caption.text for caption in captions] == [scene.caption for scene in scenes]
    assert {(caption.width, caption.height) for caption in captions} == {(IMAGE_SIZE * SCALE, IMAGE_SIZE * SCALE)}
