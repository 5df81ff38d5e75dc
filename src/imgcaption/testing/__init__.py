"""Helpers for tests, benchmarks and the offline demo: models built locally, never downloaded.

``save_random_model`` writes a model directory that loads through exactly the code path of the real model
(``Captioner.from_pretrained(directory)``): the real vit-gpt2 config, preprocessor config and GPT-2 tokenizer
(vendored in ``vit_gpt2/``, Apache-2.0, see its NOTICE.md) with random weights. ``full`` has the real architecture
and cost (~239M parameters) for benchmarks; ``tiny`` is the same architecture shrunk for unit tests.
Captions from random weights are gibberish: they test plumbing, determinism and speed, not wording.
``save_random_blip``, ``save_random_git``, ``save_random_florence2`` and ``save_random_chat_vlm`` do the same for
the other model families (``FAMILY_MODEL_FACTORIES`` by family name), each with its own processor and a tokenizer
built locally.
``MemorySource`` and ``MemoryStore`` are in-memory implementations of the ports.

``generate_scene`` draws synthetic scenes ("a red circle on the left of a blue square") and
``scene_captioner_path()`` is a tiny captioner trained on them (committed, 100% exact on held-out scenes), so tests
and the offline demo can check that the right caption reaches the right record.
"""

from __future__ import annotations

from imgcaption.testing.fakes import MemorySource, MemoryStore
from imgcaption.testing.family_models import (
    FAMILY_MODEL_FACTORIES,
    save_random_blip,
    save_random_chat_vlm,
    save_random_florence2,
    save_random_git,
)
from imgcaption.testing.random_model import VENDORED_MODEL_FILES, ModelSize, save_random_model
from imgcaption.testing.scene_model import scene_captioner_path
from imgcaption.testing.scenes import Scene, generate_scene, held_out_scenes, mirror_scene, transform_scene

__all__ = [
    "FAMILY_MODEL_FACTORIES",
    "VENDORED_MODEL_FILES",
    "MemorySource",
    "MemoryStore",
    "ModelSize",
    "Scene",
    "generate_scene",
    "held_out_scenes",
    "mirror_scene",
    "save_random_blip",
    "save_random_chat_vlm",
    "save_random_florence2",
    "save_random_git",
    "save_random_model",
    "scene_captioner_path",
    "transform_scene",
]
