"""Exact mode: the lean decoder produces the very tokens of ``model.generate``, step for step.

If one of these fails, captions made with the default settings would silently differ from the original system's:
fix the decoder, never the expectation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from imgcaption import GenerationOptions
from imgcaption.backends.base import LoadedModel
from imgcaption.backends.registry import load_model
from imgcaption.backends.vitgpt2_exact import FastDecoder, decode, fast_path_unsupported

OPTIONS = [
    GenerationOptions(),  # the original system: beams 4, max_length 16
    GenerationOptions(num_beams=1, max_length=16),
    GenerationOptions(num_beams=3, max_new_tokens=7),
    GenerationOptions(num_beams=8, max_length=12),
]


def noisy_images(count: int, seed: int = 0) -> list[Image.Image]:
    """Different sizes and contents, so every image takes its own path through the beams."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (64 + 24 * i, 96 + 16 * i, 3), dtype=np.uint8)) for i in range(count)]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> LoadedModel:
    torch.set_num_threads(1)
    return load_model(str(tiny_model_dir))


def pixels(loaded: LoadedModel, images: list[Image.Image]) -> torch.Tensor:
    values: torch.Tensor = loaded.processor(images=images, return_tensors="pt").pixel_values
    return values


def reference(model: Any, pixel_values: torch.Tensor, options: GenerationOptions) -> torch.Tensor:
    with torch.inference_mode():
        out: torch.Tensor = model.generate(pixel_values, **options.generate_kwargs())
    return out


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: o.key)
@pytest.mark.parametrize("batch", [1, 3])
def test_fast_decoder_returns_the_tokens_of_generate(tiny: LoadedModel, options: GenerationOptions, batch: int) -> None:
    values = pixels(tiny, noisy_images(batch, seed=batch))
    assert fast_path_unsupported(tiny.model, options) is None
    expected = reference(tiny.model, values, options)
    assert torch.equal(FastDecoder(tiny.model).generate(values, options), expected)


def test_every_step_computes_bit_identical_logits(tiny: LoadedModel) -> None:
    """Stronger than equal tokens: no reordering of floating-point work at all, so no tie can ever break apart."""
    values = pixels(tiny, noisy_images(2))
    options = GenerationOptions(num_beams=4, max_new_tokens=5)
    with torch.inference_mode():
        expected = tiny.model.generate(
            values, **options.generate_kwargs(), return_dict_in_generate=True, output_logits=True
        ).logits
    decoder = FastDecoder(tiny.model)
    seen: list[torch.Tensor] = []
    step = decoder._step

    def recording_step(*args: Any, **kwargs: Any) -> torch.Tensor:
        logits = step(*args, **kwargs)
        seen.append(logits.clone())
        return logits

    decoder._step = recording_step  # type: ignore[method-assign]
    decoder.generate(values, options)
    assert len(seen) == len(expected)
    for ours, theirs in zip(seen, expected, strict=True):
        assert torch.equal(ours, theirs)


def test_a_trained_model_whose_captions_end_early_stops_where_generate_stops() -> None:
    """The scene captioner emits EOS, so finished beams, the early-stop heuristic and padding are exercised."""
    from imgcaption.testing.scene_model import scene_captioner_path
    from imgcaption.testing.scenes import held_out_scenes

    loaded = load_model(str(scene_captioner_path()))
    values = pixels(loaded, [scene.image for scene in held_out_scenes(4)] + noisy_images(2))
    eos = loaded.model.generation_config.eos_token_id
    ended = 0
    for options in OPTIONS:
        expected = reference(loaded.model, values, options)
        ended += int((expected[:, 1:] == eos).sum())
        assert torch.equal(FastDecoder(loaded.model).generate(values, options), expected)
    assert ended, "no caption ended early: this test no longer exercises EOS handling"


def test_decode_falls_back_to_generate_when_the_config_asks_for_a_logits_processor(tiny_model_dir: Path) -> None:
    loaded = load_model(str(tiny_model_dir))
    loaded.model.generation_config.repetition_penalty = 1.5
    options = GenerationOptions()
    assert fast_path_unsupported(loaded.model, options) == "generation_config.repetition_penalty is set"
    values = pixels(loaded, noisy_images(1))
    assert torch.equal(decode(loaded.model, values, options), reference(loaded.model, values, options))


def test_decode_falls_back_to_generate_for_eager_attention(tiny_model_dir: Path) -> None:
    loaded = load_model(str(tiny_model_dir))
    loaded.model.set_attn_implementation("eager")
    options = GenerationOptions()
    assert fast_path_unsupported(loaded.model, options) == "decoder attention is 'eager', not 'sdpa'"
    values = pixels(loaded, noisy_images(1))
    assert torch.equal(decode(loaded.model, values, options), reference(loaded.model, values, options))


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("VITGPT2_FULL_DIR"),
    reason="set VITGPT2_FULL_DIR to a save_random_model(DIR, 'full') directory (~1 GB) to run",
)
def test_full_size_model_gives_identical_tokens() -> None:
    loaded = load_model(os.environ["VITGPT2_FULL_DIR"])
    values = pixels(loaded, noisy_images(3, seed=3))
    for options in OPTIONS[:2]:
        for row in range(values.shape[0]):
            single = values[row : row + 1]
            assert torch.equal(decode(loaded.model, single, options), reference(loaded.model, single, options))
