"""The demo's example photos, painted with Pillow from a fixed seed (our own work, CC0): no download, no licence
question, and an installed wheel can regenerate the exact files that ship in the repository's ``examples/``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 480, 320


def _vertical_gradient(top: tuple[int, int, int], bottom: tuple[int, int, int], height: int) -> Image.Image:
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    colors = (1 - ramp) * np.array(top) + ramp * np.array(bottom)
    return Image.fromarray(np.repeat(colors, WIDTH, axis=1).round().astype(np.uint8))


def _noise(image: Image.Image, rng: random.Random, amount: float = 6.0) -> Image.Image:
    """A little sensor-like grain, so the pictures look less like vector art."""
    generator = np.random.default_rng(rng.randrange(2**32))
    pixels = np.asarray(image, dtype=np.float64) + generator.normal(0.0, amount, (image.height, image.width, 1))
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


def sunset_over_the_sea(rng: random.Random) -> Image.Image:
    horizon = int(HEIGHT * 0.58)
    image = _vertical_gradient((58, 44, 110), (250, 150, 70), horizon)
    canvas = Image.new("RGB", (WIDTH, HEIGHT))
    canvas.paste(image, (0, 0))
    canvas.paste(_vertical_gradient((40, 70, 120), (15, 30, 60), HEIGHT - horizon), (0, horizon))
    draw = ImageDraw.Draw(canvas)
    sun_x, radius = int(WIDTH * 0.62), 38
    draw.ellipse((sun_x - radius, horizon - radius, sun_x + radius, horizon + radius), fill=(255, 210, 120))
    canvas.paste(_vertical_gradient((40, 70, 120), (15, 30, 60), HEIGHT - horizon), (0, horizon))
    for row in range(horizon + 4, HEIGHT, 7):  # the sun's reflection broken by waves
        half = max(4, int(radius * (1 - (row - horizon) / (HEIGHT - horizon))) + rng.randint(-6, 6))
        draw.line((sun_x - half, row, sun_x + half, row), fill=(240, 170, 90), width=2)
    return _noise(canvas.filter(ImageFilter.GaussianBlur(1.2)), rng)


def mountains_and_lake(rng: random.Random) -> Image.Image:
    canvas = _vertical_gradient((120, 170, 230), (215, 230, 245), HEIGHT)
    draw = ImageDraw.Draw(canvas)
    for layer, color in enumerate(((120, 130, 150), (80, 95, 110), (50, 70, 60))):
        base = int(HEIGHT * (0.55 + 0.08 * layer))
        points = [(0, HEIGHT)]
        x = 0
        while x <= WIDTH:
            points.append((x, base - rng.randint(30, 110 - 25 * layer)))
            x += rng.randint(40, 90)
        points += [(WIDTH, base - 20), (WIDTH, HEIGHT)]
        draw.polygon(points, fill=color)
        if layer == 0:  # snow caps on the farthest range
            for px, py in points[1:-2]:
                draw.polygon([(px - 14, py + 16), (px, py), (px + 14, py + 16)], fill=(245, 245, 250))
    lake_top = int(HEIGHT * 0.8)
    draw.rectangle((0, lake_top, WIDTH, HEIGHT), fill=(70, 110, 150))
    return _noise(canvas.filter(ImageFilter.GaussianBlur(0.8)), rng)


def night_sky_with_moon(rng: random.Random) -> Image.Image:
    canvas = _vertical_gradient((5, 8, 30), (25, 35, 80), HEIGHT)
    draw = ImageDraw.Draw(canvas)
    for _ in range(160):
        x, y = rng.randrange(WIDTH), rng.randrange(int(HEIGHT * 0.8))
        level = rng.randint(150, 255)
        draw.point((x, y), fill=(level, level, level))
    draw.ellipse((340, 40, 400, 100), fill=(240, 235, 210))
    draw.ellipse((355, 35, 415, 95), fill=(12, 16, 45))  # crescent
    skyline = [(0, HEIGHT)]
    x = 0
    while x < WIDTH:
        width, height = rng.randint(25, 60), rng.randint(40, 120)
        skyline += [(x, HEIGHT - height), (x + width, HEIGHT - height)]
        for wy in range(HEIGHT - height + 8, HEIGHT - 6, 14):
            for wx in range(x + 5, x + width - 6, 10):
                if rng.random() < 0.3:
                    draw.rectangle((wx, wy, wx + 4, wy + 6), fill=(250, 210, 120))
        x += width
    skyline.append((WIDTH, HEIGHT))
    layer = Image.new("L", (WIDTH, HEIGHT), 0)
    ImageDraw.Draw(layer).polygon(skyline, fill=255)
    buildings = Image.new("RGB", (WIDTH, HEIGHT), (15, 15, 22))
    lit = canvas.copy()
    canvas.paste(buildings, (0, 0), layer)
    # keep the lit windows drawn above on top of the building mass
    windows = Image.eval(lit.convert("L"), lambda v: 255 if v > 180 else 0)
    canvas.paste(lit, (0, 0), Image.composite(windows, Image.new("L", windows.size, 0), layer))
    return _noise(canvas, rng, 4.0)


def red_apple_on_a_table(rng: random.Random) -> Image.Image:
    canvas = _vertical_gradient((225, 220, 210), (190, 180, 165), HEIGHT)
    draw = ImageDraw.Draw(canvas)
    table_top = int(HEIGHT * 0.62)
    for row in range(table_top, HEIGHT, 3):  # wood grain
        tone = 120 + int(20 * math.sin(row / 6 + rng.random()))
        draw.line((0, row, WIDTH, row), fill=(tone + 30, tone - 10, tone - 60), width=3)
    cx, cy, r = WIDTH // 2, table_top - 30, 62
    draw.ellipse((cx - r + 10, table_top - 8, cx + r + 30, table_top + 16), fill=(95, 65, 40))  # shadow
    for step in range(r, 0, -2):  # shaded sphere
        shade = 1 - step / r
        color = (int(150 + 100 * shade), int(15 + 40 * shade), int(20 + 30 * shade))
        ox, oy = int(-18 * shade), int(-18 * shade)
        draw.ellipse((cx - step + ox, cy - step + oy, cx + step + ox, cy + step + oy), fill=color)
    draw.line((cx, cy - r + 4, cx + 6, cy - r - 18), fill=(80, 50, 20), width=5)  # stalk
    draw.ellipse((cx + 6, cy - r - 22, cx + 40, cy - r - 6), fill=(70, 140, 50))  # leaf
    return _noise(canvas.filter(ImageFilter.GaussianBlur(1.0)), rng)


def flowers_in_a_meadow(rng: random.Random) -> Image.Image:
    canvas = _vertical_gradient((150, 200, 240), (200, 225, 240), int(HEIGHT * 0.4))
    full = Image.new("RGB", (WIDTH, HEIGHT))
    full.paste(canvas, (0, 0))
    full.paste(_vertical_gradient((110, 170, 70), (50, 110, 35), HEIGHT - canvas.height), (0, canvas.height))
    draw = ImageDraw.Draw(full)
    for _ in range(220):
        y = rng.randint(canvas.height + 5, HEIGHT)
        x = rng.randrange(WIDTH)
        size = 2 + (y - canvas.height) // 25
        color = rng.choice(((250, 245, 240), (245, 215, 60), (230, 90, 140), (180, 120, 220)))
        draw.line((x, y, x, y + size * 2), fill=(40, 100, 30), width=1)
        draw.ellipse((x - size, y - size, x + size, y + size), fill=color)
    return _noise(full.filter(ImageFilter.GaussianBlur(0.6)), rng)


EXAMPLES: dict[str, Callable[[random.Random], Image.Image]] = {
    "sunset-over-the-sea.jpg": sunset_over_the_sea,
    "mountains-and-lake.jpg": mountains_and_lake,
    "night-sky-with-moon.jpg": night_sky_with_moon,
    "red-apple-on-a-table.jpg": red_apple_on_a_table,
    "flowers-in-a-meadow.jpg": flowers_in_a_meadow,
}
"""File name → painter. The names say what each picture shows, to compare with a real model's captions."""


def write_example_images(directory: str | Path, *, seed: int = 2024) -> list[Path]:
    """Paint every example into ``directory`` (same seed, same pixels) and return the paths, in name order."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (name, painter) in enumerate(sorted(EXAMPLES.items())):
        image = painter(random.Random(seed + index))  # noqa: S311 - reproducible pictures, not security
        path = target / name
        image.save(path, format="JPEG", quality=85, optimize=True)
        paths.append(path)
    return paths
