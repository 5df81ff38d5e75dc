"""Random-weight vit-gpt2 model directories, full size or shrunk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

ModelSize = Literal["tiny", "full"]

VENDORED_MODEL_FILES = Path(__file__).with_name("vit_gpt2")
"""Config, preprocessor config and tokenizer of nlpconnect/vit-gpt2-image-captioning (no weights)."""

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "generation_config.json")

# Same architecture, shrunk: a few MB (mostly the 50257-row embedding), builds and runs in well under a second.
_TINY_ENCODER = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "patch_size": 32,
}
_TINY_DECODER = {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 64, "n_ctx": 64}


def vendored_config(size: ModelSize = "full") -> dict[str, Any]:
    """The real model's config, optionally shrunk, with the dtype spelled out (transformers 5 honours it)."""
    config: dict[str, Any] = json.loads((VENDORED_MODEL_FILES / "config.json").read_text())
    if size == "tiny":
        config["encoder"].update(_TINY_ENCODER)
        config["decoder"].update(_TINY_DECODER)
    config["dtype"] = "float32"
    return config


def save_random_model(directory: str | Path, size: ModelSize = "tiny", seed: int = 0) -> Path:
    """Write a loadable model directory with random weights and return its path.

    The same ``size`` and ``seed`` give the same weights, so captions are reproducible across runs.
    """
    import torch
    from transformers import VisionEncoderDecoderConfig, VisionEncoderDecoderModel

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    config = VisionEncoderDecoderConfig.from_dict(vendored_config(size))
    torch.manual_seed(seed)
    model = VisionEncoderDecoderModel(config)
    model.eval()  # type: ignore[no-untyped-call]
    model.save_pretrained(target)
    for name in _TOKENIZER_FILES:
        shutil.copyfile(VENDORED_MODEL_FILES / name, target / name)
    return target
