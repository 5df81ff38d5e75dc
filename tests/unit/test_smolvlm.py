"""SmolVLM, the chat family's model with the most involved image layout, on a tiny random-weight copy built here.

Its processor (Idefics3's) splits each image into a grid of tiles plus a global view and frames every tile's image
tokens with their row and column, so images of different shapes give prompts of different lengths: our captions must
still be, token for token, what SmolVLM's model card call gives (processor, ``model.generate`` with the same
options, the answer after the prompt), one image at a time and in a padded batch. The Pillow image processor runs it
without torchvision.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from imgcaption import Captioner, GenerationOptions
from imgcaption.testing.family_models import save_random_smolvlm

OPTIONS = GenerationOptions(num_beams=2, max_new_tokens=8, prompt="Write a short caption for this photo.")
SIZES = [(40, 30), (20, 60), (16, 16)]
"""Landscape (a 2×2 grid), portrait (1×2) and smaller than a tile (the global view alone)."""


def noise_images(seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in SIZES]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def smolvlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_smolvlm(tmp_path_factory.mktemp("smolvlm") / "model")


@pytest.fixture(scope="module")
def captioner(smolvlm_dir: Path) -> Captioner:
    return Captioner.from_pretrained(str(smolvlm_dir), threads=1)


def reference(directory: Path, images: list[Image.Image], options: GenerationOptions) -> tuple[list[Any], list[str]]:
    """The model card's call: the chat template to text, the processor on text and image, ``generate``, and the
    tokens after the prompt decoded without special tokens."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(directory, backend="pil")  # the slow processor: no torchvision
    model = AutoModelForImageTextToText.from_pretrained(directory).eval()
    rows, texts = [], []
    for image in images:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": options.prompt}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(text=prompt, images=[image], return_tensors="pt")
        out = model.generate(**inputs, num_beams=options.num_beams, max_new_tokens=options.max_new_tokens)
        answer = out[:, inputs["input_ids"].shape[1] :]
        rows.append(answer[0])
        texts.append(processor.batch_decode(answer, skip_special_tokens=True)[0].strip())
    return rows, texts


def test_the_directory_is_the_checkpoints_kind_and_needs_no_torchvision(smolvlm_dir: Path) -> None:
    config = json.loads((smolvlm_dir / "config.json").read_text())
    assert (config["model_type"], config["architectures"]) == ("idefics3", ["Idefics3ForConditionalGeneration"])
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(smolvlm_dir)
    assert type(processor).__name__ == "Idefics3Processor"
    assert type(processor.image_processor).__name__ == "Idefics3ImageProcessorPil"


def test_a_smolvlm_is_a_chat_model_with_its_default_instruction(captioner: Captioner) -> None:
    assert captioner.family == "chat"
    assert captioner.generation.prompt == "Describe this image in one sentence."


def test_our_captions_are_token_for_token_the_model_cards_call(captioner: Captioner, smolvlm_dir: Path) -> None:
    """Caught (checked on a copy of the code): the prompt's tokens left at the start of the caption, and a batch
    padded on the right (a prompt then no longer ends where its answer starts)."""
    images = noise_images()
    expected_ids, expected_texts = reference(smolvlm_dir, images, OPTIONS)
    ours = [captioner.forward(captioner.preprocess([image]), OPTIONS)[0] for image in images]
    assert [row.tolist() for row in ours] == [row.tolist() for row in expected_ids]
    captions = captioner.caption_many([png_bytes(image) for image in images], generation=OPTIONS, batch_size=3)
    assert [caption.text for caption in captions] == expected_texts
    assert len(set(expected_texts)) == 3, "the random model must tell these images apart for this test to mean much"


def test_a_padded_batch_of_differently_shaped_images_keeps_each_caption_with_its_image(captioner: Captioner) -> None:
    images = [png_bytes(image) for image in noise_images(seed=1)]
    alone = [captioner.caption(image, generation=OPTIONS).text for image in images]
    together = [result.text for result in captioner.caption_many(images, generation=OPTIONS, batch_size=3)]
    assert together == alone
    results = captioner.caption_many([images[0], b"not an image", images[1]], generation=OPTIONS, batch_size=3)
    assert [result.status for result in results] == ["ok", "failed", "ok"]


def test_int8_quantizes_its_linear_layers_and_still_captions(smolvlm_dir: Path) -> None:
    int8 = Captioner.from_pretrained(str(smolvlm_dir), precision="int8", threads=1)
    modules = list(int8._loaded.model.modules())
    assert not [module for module in modules if type(module) is torch.nn.Linear]
    caption = int8.caption(png_bytes(noise_images()[0]), generation=OPTIONS)
    assert caption.precision == "int8" and caption.generation.prompt == OPTIONS.prompt
