"""The synthetic scene generator, and the committed scene captioner's accuracy through the public API."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageOps

from imgcaption.testing.scene_model import (
    SCENE_CAPTIONER_ACCURACY,
    SCENE_CAPTIONER_MISSES,
    reliably_captioned_seeds,
    scene_captioner_path,
)
from imgcaption.testing.scenes import (
    CAPTION_PATTERN,
    COLORS,
    HELD_OUT_SEED_OFFSET,
    IMAGE_SIZE,
    Scene,
    generate_scene,
    held_out_scenes,
    mirror_scene,
    object_masks,
    render,
    stored_for_orientation,
    transform_scene,
)

SEEDS = range(300)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


# ---------------------------------------------------------------- generator


def test_same_seed_gives_same_scene() -> None:
    first, again = generate_scene(12345), generate_scene(12345)
    assert first.caption == again.caption
    assert first.objects == again.objects
    assert np.array_equal(_pixels(first.image), _pixels(again.image))


def test_different_seeds_give_different_images() -> None:
    images = {generate_scene(seed).image.tobytes() for seed in range(50)}
    assert len(images) == 50


def test_known_seed_is_stable_across_versions() -> None:
    """Other tests pin exact captions of generated scenes: the generator must not drift silently."""
    assert generate_scene(0).caption == "a yellow square above a blue circle"
    assert generate_scene(HELD_OUT_SEED_OFFSET).caption == "a yellow circle on the left of a green triangle"


def test_captions_follow_grammar_and_pixels() -> None:
    for seed in SEEDS:
        _check_caption_matches_pixels(generate_scene(seed))


def _check_caption_matches_pixels(scene: Scene) -> None:
    assert scene.image.mode == "RGB"
    assert scene.image.size == (IMAGE_SIZE, IMAGE_SIZE)
    match = CAPTION_PATTERN.match(scene.caption)
    assert match, scene.caption
    color_a, shape_a, phrase, color_b, shape_b = match.groups()
    first, second = scene.objects
    assert (first.color, first.shape, second.color, second.shape) == (color_a, shape_a, color_b, shape_b)
    assert color_a != color_b
    assert phrase == {"left": "on the left of", "above": "above"}[scene.relation]
    axis = 0 if scene.relation == "left" else 1
    assert first.center[axis] + 60 < second.center[axis]  # clearly left of / above
    pixels = _pixels(scene.image)
    for obj, mask in zip(scene.objects, object_masks(scene.objects), strict=True):
        assert mask.sum() > 1500  # big enough to see the shape at patch size 32
        assert np.abs(pixels[mask] - np.array(obj.rgb)).max() == 0
        assert np.abs(np.array(obj.rgb) - np.array(COLORS[obj.color])).max() <= 12
    assert not (object_masks(scene.objects).all(axis=0)).any()  # the two objects never touch


def test_relation_can_be_forced_and_is_balanced() -> None:
    assert generate_scene(7, relation="left").relation == "left"
    assert generate_scene(7, relation="above").caption.split()[3] == "above"
    relations = [generate_scene(seed).relation for seed in SEEDS]
    assert 0.4 < relations.count("left") / len(relations) < 0.6
    with pytest.raises(ValueError, match="relation"):
        generate_scene(1, relation="below")


def test_held_out_scenes_use_their_own_seeds() -> None:
    scenes = held_out_scenes(5)
    assert [s.seed for s in scenes] == [HELD_OUT_SEED_OFFSET + i for i in range(5)]
    assert [s.caption for s in scenes] == [generate_scene(HELD_OUT_SEED_OFFSET + i).caption for i in range(5)]


# ---------------------------------------------------------------- mirrors and rotations


def test_mirror_flips_left_and_right() -> None:
    for seed in range(40):
        scene = generate_scene(seed)
        mirrored = mirror_scene(scene)
        first, second = scene.objects
        if scene.relation == "left":
            expected = f"a {second.color} {second.shape} on the left of a {first.color} {first.shape}"
        else:
            expected = scene.caption
        assert mirrored.caption == expected
        assert np.array_equal(_pixels(mirrored.image), _pixels(scene.image)[:, ::-1])
        assert mirror_scene(mirrored).caption == scene.caption
        _check_caption_matches_pixels(mirrored)


def _without_triangles(n: int, relation: str) -> list[Scene]:
    scenes = (generate_scene(seed, relation=relation) for seed in range(1000))
    return [s for s in scenes if all(o.shape != "triangle" for o in s.objects)][:n]


@pytest.mark.parametrize("method", list(Image.Transpose))
@pytest.mark.parametrize("relation", ["left", "above"])
def test_transformed_scene_is_the_rendered_transformed_objects(method: Image.Transpose, relation: str) -> None:
    """A transformed scene is an ordinary scene: its pixels are its objects drawn where the caption says."""
    for scene in _without_triangles(5, relation):
        moved = transform_scene(scene, method)
        assert moved is not None
        assert CAPTION_PATTERN.match(moved.caption)
        redrawn = _pixels(render(moved.background, moved.objects))
        differing = (redrawn != _pixels(moved.image)).any(axis=2).mean()
        assert differing < 0.002, f"{method.name}: {differing:.4f} of pixels differ"
        first, second = moved.objects
        axis = 0 if moved.relation == "left" else 1
        assert first.center[axis] < second.center[axis]


def test_rotations_turn_left_of_into_above() -> None:
    scene = _without_triangles(1, "left")[0]
    (a, b) = scene.objects
    clockwise = transform_scene(scene, Image.Transpose.ROTATE_270)
    counter_clockwise = transform_scene(scene, Image.Transpose.ROTATE_90)
    assert clockwise is not None
    assert counter_clockwise is not None
    assert clockwise.caption == f"a {a.color} {a.shape} above a {b.color} {b.shape}"
    assert counter_clockwise.caption == f"a {b.color} {b.shape} above a {a.color} {a.shape}"


def test_triangles_are_only_mirrored() -> None:
    """An upright triangle turned sideways or upside down is a shape the model never saw: no expected caption."""
    scene = next(s for s in map(generate_scene, range(100)) if s.objects[0].shape == "triangle")
    assert transform_scene(scene, Image.Transpose.FLIP_LEFT_RIGHT) is not None
    for method in set(Image.Transpose) - {Image.Transpose.FLIP_LEFT_RIGHT}:
        assert transform_scene(scene, method) is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_stored_for_orientation_shows_upright_after_exif_transpose(orientation: int) -> None:
    scene = generate_scene(3)
    stored = stored_for_orientation(scene.image, orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", exif=exif.tobytes())
    reopened = Image.open(io.BytesIO(buffer.getvalue()))
    assert np.array_equal(_pixels(ImageOps.exif_transpose(reopened)), _pixels(scene.image))


# ---------------------------------------------------------------- the committed model


def test_committed_model_is_small_and_fp16_on_disk() -> None:
    directory = scene_captioner_path()
    total = sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
    assert total <= 10_000_000
    config = json.loads((directory / "config.json").read_text())
    assert config["dtype"] == "float32"
    from safetensors import safe_open

    with safe_open(str(directory / "model.safetensors"), framework="pt") as weights:
        dtypes = {str(weights.get_slice(name).get_dtype()) for name in weights.keys()}  # noqa: SIM118
    assert dtypes == {"F16"}
    for name in (
        "tokenizer.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
        "generation_config.json",
        "README.md",
    ):
        assert (directory / name).is_file(), name


@pytest.mark.slow
def test_committed_model_captions_held_out_scenes() -> None:
    """Exact captions on 200 scenes it never saw, through the public API with default generation settings."""
    import torch

    from imgcaption import Caption, Captioner

    scenes = held_out_scenes(200)
    threads = torch.get_num_threads()
    try:
        # One thread: on a 2-core machine shared with other jobs, two spinning OpenMP threads make this 3-5x slower.
        captioner = Captioner.from_pretrained(str(scene_captioner_path()), threads=1)
        assert captioner.generation.num_beams == 4
        assert captioner.generation.max_length == 16
        results = captioner.caption_many([scene.image for scene in scenes], batch_size=16)
    finally:
        torch.set_num_threads(threads)
    assert all(isinstance(result, Caption) for result in results)
    texts = [result.text for result in results if isinstance(result, Caption)]
    wrong = {scene.seed for scene, text in zip(scenes, texts, strict=True) if text != scene.caption}
    accuracy = 1 - len(wrong) / len(scenes)
    assert accuracy >= SCENE_CAPTIONER_ACCURACY, f"{accuracy:.3f} < {SCENE_CAPTIONER_ACCURACY}: {sorted(wrong)}"
    assert wrong <= SCENE_CAPTIONER_MISSES  # no new misses: other tests rely on the rest
    assert len(reliably_captioned_seeds()) == 200 - len(wrong)
    assert all(CAPTION_PATTERN.match(text) for text in texts), texts  # even a miss is a grammatical caption
