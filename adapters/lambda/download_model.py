"""Build-time step of the Lambda image: download the pinned model into a directory and record its provenance.

Run by the Dockerfile (``python download_model.py MODEL_ID REVISION PRECISION /opt/model``); never at run time,
where ``HF_HUB_OFFLINE=1``. Only the files inference needs are fetched (no TensorFlow/Flax weights).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ALLOW = [
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "*.safetensors",
    "pytorch_model.bin",
]


def main(model_id: str, revision: str, precision: str, target: str) -> None:
    from huggingface_hub import snapshot_download

    directory = Path(target)
    snapshot_download(repo_id=model_id, revision=revision, local_dir=directory, allow_patterns=ALLOW)
    if any(directory.glob("*.safetensors")):
        (directory / "pytorch_model.bin").unlink(missing_ok=True)  # one copy of the weights is enough
    provenance = {"model_id": model_id, "revision": revision, "precision": precision}
    (directory / "imgcaption-model.json").write_text(json.dumps(provenance, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit("usage: download_model.py MODEL_ID REVISION PRECISION TARGET_DIR")
    main(*sys.argv[1:])
