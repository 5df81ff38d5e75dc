"""What every backend hands the Captioner: a :class:`LoadedModel`, and the provenance file that says how it was made.

Every backend module imports this one and nothing above it, so the registry can import the backends without a
cycle.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgcaption.errors import ModelLoadError

PROVENANCE_FILE = "imgcaption-model.json"
"""Written next to a model we prepared (Docker build, ``imgcaption optimize``): where it came from and how."""

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """The three pieces a caption needs (model, image processor, token decoder), plus their provenance."""

    model: Any  # transformers.VisionEncoderDecoderModel, or a backend's own model
    processor: Any  # transformers.ViTImageProcessor, or numpy_io.ImagePreprocessor
    tokenizer: Any  # transformers PreTrainedTokenizerFast, or numpy_io.TokenDecoder
    model_id: str
    revision: str | None
    provenance: dict[str, Any]


def read_provenance(directory: Path) -> dict[str, Any]:
    file = directory / PROVENANCE_FILE
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"unreadable {PROVENANCE_FILE}: {exc}", source=str(directory)) from exc
    return data if isinstance(data, dict) else {}


def local_revision(directory: Path, provenance: dict[str, Any]) -> str | None:
    """A local dir knows its revision from our provenance file, or from a hub cache ``snapshots/<commit>`` path."""
    recorded = provenance.get("revision")
    if isinstance(recorded, str):
        return recorded
    return directory.name if _COMMIT.match(directory.name) else None
