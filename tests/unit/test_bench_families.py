"""``imgcaption bench-family``: per model family, our fp32 and int8 against the family's own generate, on tiny models.

Only what a benchmark must get right is checked, never how fast anything is: every mode timed on every image in
every pass, the reference really being the family's call (our fp32 agrees with it token for token, which the
family tests establish independently), agreement computed from the tokens, and a table row per model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgcaption.bench.families import FAMILY_MODES, Agreement, _agreement
from imgcaption.testing import save_random_model
from imgcaption.testing.family_models import save_random_blip, save_random_git, save_random_smolvlm
from imgcaption_cli.main import cli


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench-families")
    return {
        "blip": save_random_blip(root / "blip"),
        "git": save_random_git(root / "git"),
        "chat": save_random_smolvlm(root / "smolvlm"),
        "vit-gpt2": save_random_model(root / "vit-gpt2", "tiny"),
    }


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("bench-images")
    rng = np.random.default_rng(0)
    paths = []
    for index, (width, height) in enumerate([(40, 30), (24, 48)]):
        path = root / f"noise-{index}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def bench_family(*args: str | Path) -> Any:
    return CliRunner().invoke(cli, ["bench-family", *(str(arg) for arg in args)], catch_exceptions=False)


def test_every_family_gets_a_row_with_every_mode_timed_on_every_image_in_every_pass(
    models: dict[str, Path], images: list[Path], tmp_path: Path
) -> None:
    raw = tmp_path / "families.json"
    image_args = [arg for path in images for arg in ("--image", path)]
    result = bench_family(*models.values(), *image_args, "--repeats", "2", "--max-new-tokens", "6", "--json", raw)
    assert result.exit_code == 0, result.output
    records = json.loads(raw.read_text())
    assert [record["family"] for record in records] == list(models)
    for record in records:
        assert [timing["mode"] for timing in record["timings"]] == list(FAMILY_MODES)
        assert all(len(timing["seconds"]) == 2 * len(images) for timing in record["timings"])
        assert record["generation"]["max_new_tokens"] == 6
        agreement = {row["mode"]: row for row in record["agreement"]}
        # our fp32 path is the family's own call, so it must agree entirely; int8 is measured, whatever it is
        assert agreement["fp32"] == {"mode": "fp32", "identical_captions": 1.0, "token_agreement": 1.0}
        assert record["captions"]["fp32"] == record["captions"]["reference"]
        assert 0.0 <= agreement["int8"]["token_agreement"] <= 1.0
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(models)  # the header, then one row per model
    assert "AVX-512 VNNI" in result.stdout


def test_the_familys_default_prompt_is_the_one_benchmarked(models: dict[str, Path], images: list[Path]) -> None:
    result = bench_family(models["chat"], "--image", images[0], "--repeats", "1", "--max-new-tokens", "4")
    assert result.exit_code == 0, result.output
    assert "prompt `Describe this image in one sentence.`" in result.stdout


def test_a_prompt_the_family_cannot_take_is_a_usage_error(models: dict[str, Path], images: list[Path]) -> None:
    result = CliRunner().invoke(
        cli, ["bench-family", str(models["git"]), "--image", str(images[0]), "--prompt", "a picture of"]
    )
    assert result.exit_code == 2
    assert "take no prompt" in result.output


def test_agreement_counts_token_positions_and_whole_captions() -> None:
    reference = [([1, 5, 6, 2], "a b"), ([1, 7, 2, 0, 0], "c")]  # 0: padding, left out
    ours = [([1, 5, 6, 2], "a b"), ([1, 7, 8, 2], "c d")]
    assert _agreement("int8", reference, ours, pad=0) == Agreement("int8", 0.5, 6 / 8)
