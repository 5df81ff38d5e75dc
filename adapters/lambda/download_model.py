"""Build-time step of the Lambda image: download the pinned model into a directory and record its provenance.

Run by the Dockerfile (``python download_model.py MODEL_ID REVISION /opt/model-source``); never at run time, where
``HF_HUB_OFFLINE=1``. Only the files inference needs are fetched, for every model family imgcaption runs: the
config and generation config, the weights (safetensors, single or sharded, else the pickled ``pytorch_model*.bin``;
never both, and never TensorFlow, Flax, ONNX or remote-code ``*.py`` files), and everything the family's processor
loads (image processor, tokenizer files of every kind, chat templates).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

ALLOW = (
    # the model
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model-*-of-*.bin",
    "pytorch_model.bin.index.json",
    # the processor: image processor (transformers 5 saves it inside processor_config.json) ...
    "preprocessor_config.json",
    "processor_config.json",
    # ... the tokenizer: fast (tokenizer.json) or the files a slow one is rebuilt from (BPE, WordPiece, sentencepiece)
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    # ... and a chat model's templates
    "chat_template.json",
    "chat_template.jinja",
    "additional_chat_templates/*.jinja",
)
"""Patterns of the files to fetch (``fnmatch``, as huggingface_hub matches them), all in the repository's root."""

PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model-*-of-*.bin", "pytorch_model.bin.index.json")
"""The same weights again where safetensors exist: left out then."""


def files_to_fetch(repo_files: Iterable[str]) -> list[str]:
    """The files of a model repository (``HfApi.list_repo_files``) that the image needs, in listing order."""
    # the matching snapshot_download applies to allow_patterns (listed in huggingface_hub.utils.__all__, but its
    # stub imports it without re-exporting it)
    from huggingface_hub.utils import filter_repo_objects  # type: ignore[attr-defined]

    wanted = list(filter_repo_objects(list(repo_files), allow_patterns=list(ALLOW)))
    if any(name.endswith(".safetensors") for name in wanted):
        pickled = set(filter_repo_objects(wanted, allow_patterns=list(PICKLED_WEIGHTS)))
        wanted = [name for name in wanted if name not in pickled]
    if "config.json" not in wanted:
        raise SystemExit("the repository has no config.json at its root: not a transformers model")
    if not any(name.endswith((".safetensors", ".bin")) for name in wanted):
        raise SystemExit(
            "the repository has no PyTorch weights (model*.safetensors or pytorch_model*.bin) at its root; "
            "TensorFlow, Flax, ONNX or GGUF weights alone cannot be run"
        )
    return wanted


def main(model_id: str, revision: str, target: str) -> None:
    from huggingface_hub import HfApi, hf_hub_download

    directory = Path(target)
    names = files_to_fetch(HfApi().list_repo_files(model_id, revision=revision))
    for name in names:
        hf_hub_download(model_id, name, revision=revision, local_dir=directory)
    print(f"downloaded {model_id}@{revision}: {', '.join(names)}")
    # "fp32": what the core loads any checkpoint in. An int8 image either exports it (vit-gpt2's ONNX artifact,
    # with its own provenance) or quantizes it at load, which the core does only for a model that says it is fp32.
    provenance = {"model_id": model_id, "revision": revision, "precision": "fp32"}
    (directory / "imgcaption-model.json").write_text(json.dumps(provenance, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: download_model.py MODEL_ID REVISION TARGET_DIR")
    main(*sys.argv[1:])
