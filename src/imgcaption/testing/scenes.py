"""Synthetic two-object scenes with exact captions, for a model that can be trained on CPU and checked in tests.

A scene is two coloured shapes in near-fixed slots (left/right or top/bottom of the centre, ±6 px jitter) on a light
background, captioned ``"a red circle on the left of a blue square"`` or ``"a yellow triangle above a green circle"``.
The caption is a function of the pixels: horizontal pairs always name the left object first ("on the left of"),
vertical pairs the top object first ("above"), so exact-match accuracy is well defined.

Everything is a pure function of the seed (Python's ``random``, stable across versions; numpy only rasterises).
Training uses seeds below :data:`HELD_OUT_SEED_OFFSET`; :func:`held_out_scenes` uses seeds from it upwards.

The slots are symmetric about the image centre, so a mirrored or rotated scene is again an in-distribution scene:
:func:`transform_scene` returns it with its expected caption (``None`` where a triangle would end up sideways or
upside down, a shape the model never saw). :func:`stored_for_orientation` gives the pixels to store with an EXIF
orientation tag so that a correct loader shows the upright scene.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image

from imgcaption.images import EXIF_ORIENTATION_TRANSPOSE

IMAGE_SIZE: Final = 224
COLORS: Final[dict[str, tuple[int, int, int]]] = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (31, 90, 220),
    "yellow": (240, 200, 30),
}
SHAPES: Final = ("circle", "square", "triangle")
RELATIONS: Final = ("left", "above")
"""``"left"``: the first object is on the left of the second; ``"above"``: the first is above the second."""
RELATION_PHRASES: Final = {"left": "on the left of", "above": "above"}

HELD_OUT_SEED_OFFSET: Final = 1_000_000_000
"""Seeds ``>=`` this are held out: the training script only draws seeds below it."""

_CENTRE: Final = (IMAGE_SIZE - 1) / 2  # 111.5: pixel indices mirror as i -> 223 - i
_SLOT_OFFSET: Final = 56.0
_JITTER: Final = 6.0
_HALF_SIZE: Final = (32.0, 40.0)  # circle radius; square and triangle scale from it
_COLOR_JITTER: Final = 12
_SQUARE_SCALE: Final = 0.88

_WORD = "|".join
CAPTION_PATTERN: Final = re.compile(
    rf"^a ({_WORD(COLORS)}) ({_WORD(SHAPES)}) (on the left of|above) a ({_WORD(COLORS)}) ({_WORD(SHAPES)})$"
)
"""Every caption matches this; groups: colour, shape, relation phrase, colour, shape."""

_INVERSE: Final = {
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class SceneObject:
    """One shape: ``center`` is (x, y) in pixel-index coordinates, ``size`` its half-extent in pixels."""

    color: str
    shape: str
    center: tuple[float, float]
    size: float
    rgb: tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Scene:
    """An image with its exact caption; ``objects`` are in caption order (left/top first)."""

    image: Image.Image
    caption: str
    relation: str
    objects: tuple[SceneObject, SceneObject]
    background: tuple[int, int, int]
    seed: int | None = None


def generate_scene(seed: int, *, relation: str | None = None) -> Scene:
    """The scene for ``seed`` (same seed, same pixels and caption); ``relation`` forces "left" or "above"."""
    if relation is not None and relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    chosen = rng.choice(RELATIONS)
    relation = relation or chosen
    color_names = rng.sample(sorted(COLORS), 2)
    objects = []
    for slot, color in zip((-1.0, 1.0), color_names, strict=True):
        along = _CENTRE + slot * _SLOT_OFFSET + rng.uniform(-_JITTER, _JITTER)
        across = _CENTRE + rng.uniform(-_JITTER, _JITTER)
        center = (along, across) if relation == "left" else (across, along)
        base = COLORS[color]
        rgb = (
            _clip(base[0] + rng.randint(-_COLOR_JITTER, _COLOR_JITTER)),
            _clip(base[1] + rng.randint(-_COLOR_JITTER, _COLOR_JITTER)),
            _clip(base[2] + rng.randint(-_COLOR_JITTER, _COLOR_JITTER)),
        )
        objects.append(SceneObject(color, rng.choice(SHAPES), center, rng.uniform(*_HALF_SIZE), rgb))
    level = rng.randint(226, 250)
    background = (
        _clip(level + rng.randint(-5, 5)),
        _clip(level + rng.randint(-5, 5)),
        _clip(level + rng.randint(-5, 5)),
    )
    first, second = objects
    return Scene(
        render(background, (first, second)),
        caption_for(relation, first, second),
        relation,
        (first, second),
        background,
        seed,
    )


def held_out_scenes(n: int = 200) -> list[Scene]:
    """``n`` scenes the training script never draws (seeds ``HELD_OUT_SEED_OFFSET + i``)."""
    return [generate_scene(HELD_OUT_SEED_OFFSET + i) for i in range(n)]


def caption_for(relation: str, first: SceneObject, second: SceneObject) -> str:
    """The caption grammar: ``a <colour> <shape> <relation phrase> a <colour> <shape>``."""
    return f"a {first.color} {first.shape} {RELATION_PHRASES[relation]} a {second.color} {second.shape}"


def render(background: tuple[int, int, int], objects: tuple[SceneObject, ...]) -> Image.Image:
    """Rasterise objects (later ones on top) onto a plain background: hard edges, no noise, so mirrors are exact."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), background)
    for obj in objects:
        rows, cols, inside = _shape_box(obj)
        image.paste(obj.rgb, (cols.start, rows.start, cols.stop, rows.stop), Image.fromarray(inside))
    return image


def object_masks(objects: tuple[SceneObject, ...]) -> npt.NDArray[np.bool_]:
    """Boolean masks (one ``IMAGE_SIZE``² plane per object) of the pixels each shape covers."""
    masks = np.zeros((len(objects), IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    for index, obj in enumerate(objects):
        rows, cols, inside = _shape_box(obj)
        masks[index, rows, cols] = inside
    return masks


def _shape_box(obj: SceneObject) -> tuple[slice, slice, npt.NDArray[np.bool_]]:
    """The shape's bounding box and its inside mask there: evaluating only the box is ~10x faster."""
    ys, xs = _grid()
    cx, cy = obj.center
    h = obj.size
    rows = slice(max(0, int(cy - h) - 1), min(IMAGE_SIZE, int(cy + h) + 2))
    cols = slice(max(0, int(cx - h) - 1), min(IMAGE_SIZE, int(cx + h) + 2))
    dx, dy = xs[rows, cols] - cx, ys[rows, cols] - cy
    if obj.shape == "circle":
        inside: npt.NDArray[np.bool_] = dx * dx + dy * dy <= h * h
    elif obj.shape == "square":
        s = h * _SQUARE_SCALE
        inside = (np.abs(dx) <= s) & (np.abs(dy) <= s)
    elif obj.shape == "triangle":  # apex up, base 2h wide, 2h tall
        inside = (dy >= -h) & (dy <= h) & (np.abs(dx) <= (dy + h) / 2)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")
    return rows, cols, inside


def transform_scene(scene: Scene, method: Image.Transpose) -> Scene | None:
    """The scene as it looks after ``image.transpose(method)``, with its caption; ``None`` if not well defined.

    Circles and squares look the same under every flip and rotation; an upright triangle only under a horizontal
    mirror, so other transforms of scenes with a triangle return ``None``.
    """
    if method != Image.Transpose.FLIP_LEFT_RIGHT and any(obj.shape == "triangle" for obj in scene.objects):
        return None
    moved = [replace(obj, center=_transform_point(obj.center, method)) for obj in scene.objects]
    (ax, ay), (bx, by) = moved[0].center, moved[1].center
    if abs(ax - bx) > abs(ay - by):
        relation, first_is_a = "left", ax < bx
    else:
        relation, first_is_a = "above", ay < by
    first, second = (moved[0], moved[1]) if first_is_a else (moved[1], moved[0])
    return Scene(
        scene.image.transpose(method),
        caption_for(relation, first, second),
        relation,
        (first, second),
        scene.background,
        scene.seed,
    )


def mirror_scene(scene: Scene) -> Scene:
    """The horizontal mirror, always well defined: a left-of pair swaps order, an above pair keeps its caption."""
    mirrored = transform_scene(scene, Image.Transpose.FLIP_LEFT_RIGHT)
    assert mirrored is not None  # a horizontal mirror is defined for every shape
    return mirrored


def stored_for_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """Pixels to store with EXIF ``orientation`` so that ``ImageOps.exif_transpose`` shows ``image`` again."""
    if orientation == 1:
        return image.copy()
    method = EXIF_ORIENTATION_TRANSPOSE[orientation]
    return image.transpose(_INVERSE.get(method, method))


def _transform_point(point: tuple[float, float], method: Image.Transpose) -> tuple[float, float]:
    """Where pixel-index point (x, y) lands under ``Image.transpose(method)`` of a square image."""
    x, y = point
    last = IMAGE_SIZE - 1
    mapping = {
        Image.Transpose.FLIP_LEFT_RIGHT: (last - x, y),
        Image.Transpose.FLIP_TOP_BOTTOM: (x, last - y),
        Image.Transpose.ROTATE_90: (y, last - x),  # counter-clockwise
        Image.Transpose.ROTATE_180: (last - x, last - y),
        Image.Transpose.ROTATE_270: (last - y, x),  # clockwise
        Image.Transpose.TRANSPOSE: (y, x),
        Image.Transpose.TRANSVERSE: (last - y, last - x),
    }
    return mapping[method]


@cache
def _grid() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    ys, xs = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
    return ys, xs


def _clip(value: int) -> int:
    return max(0, min(255, value))
