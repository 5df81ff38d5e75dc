"""What every ``imgcaption optimize`` directory holds besides its weights, written the same way by each backend.

An artifact carries the model's configs, its image processor and tokenizer files, and ``imgcaption-model.json``:
where the model came from (hub id and revision) and what was done to it, so captions made from it keep their
provenance. :mod:`.torch_int8` (torch int8) and :mod:`.export` (ONNX Runtime int8) add
their weights.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imgcaption.backends.base import PROVENANCE_FILE, VIT_GPT2, LoadedModel
from imgcaption.backends.registry import load_model
from imgcaption.errors import ConfigurationError

_OPTIONAL_FILES = ("tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")


def load_fp32_for_export(source: str | Path, revision: str | None, backend: str) -> LoadedModel:
    """The fp32 transformers model at ``source``; refused if already an artifact or if the fast path cannot run it."""
    from imgcaption.backends.vitgpt2_exact import fast_path_unsupported
    from imgcaption.generation import GenerationOptions

    loaded = load_model(str(source), revision)
    if loaded.family != VIT_GPT2:
        raise ConfigurationError(
            f"`imgcaption optimize` builds int8 artifacts of vit-gpt2 models only, and {source} is a {loaded.family} "
            "model; run it as it is: --precision int8 quantizes its Linear layers when it loads"
        )
    if loaded.provenance.get("format"):
        raise ConfigurationError(f"{source} is already an int8 artifact; optimize the fp32 model directory instead")
    reason = fast_path_unsupported(loaded.model, GenerationOptions()) or _unsupported_layers(loaded.model.config)
    if reason:
        raise ConfigurationError(f"cannot build an int8 {backend} artifact for this model: {reason}")
    return loaded


def _unsupported_layers(config: Any) -> str | None:
    """The int8 runtimes hard-code vit-gpt2's activations and attention scaling: refuse a model that differs."""
    if getattr(config.encoder, "hidden_act", None) != "gelu":
        return f"the encoder's activation is {config.encoder.hidden_act!r}, not 'gelu'"
    if getattr(config.decoder, "activation_function", None) != "gelu_new":
        return f"the decoder's activation is {config.decoder.activation_function!r}, not 'gelu_new'"
    if not getattr(config.decoder, "scale_attn_weights", True):
        return "the decoder does not scale attention weights by 1/sqrt(head size)"
    return None


def write_artifact_files(loaded: LoadedModel, source: str | Path, out: Path, provenance: Mapping[str, Any]) -> None:
    """Configs, processor and tokenizer files, and the provenance file (the source's, updated with ``provenance``)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(loaded.model.config.to_dict(), indent=2, default=str))
    generation_config = loaded.model.generation_config.to_dict()
    (out / "generation_config.json").write_text(json.dumps(generation_config, indent=2, default=str))
    loaded.processor.save_pretrained(str(out))
    loaded.tokenizer.save_pretrained(str(out))
    recorded = {
        **loaded.provenance,
        "model_id": loaded.model_id,
        "revision": loaded.revision,
        "precision": "int8",
        **provenance,
    }
    (out / PROVENANCE_FILE).write_text(json.dumps(recorded, indent=2) + "\n")
    source_dir = Path(str(source)).expanduser()
    for name in _OPTIONAL_FILES:
        if source_dir.is_dir() and (source_dir / name).is_file() and not (out / name).exists():
            shutil.copyfile(source_dir / name, out / name)
