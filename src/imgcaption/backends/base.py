"""What every backend hands the Captioner: a :class:`LoadedModel`, and the provenance file that says how it was made.

Every backend module imports this one and nothing above it, so the registry can import the backends without a
cycle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgcaption.errors import ConfigurationError, ModelLoadError
from imgcaption.generation import GenerationOptions

PROVENANCE_FILE = "imgcaption-model.json"
"""Written next to a model we prepared (Docker build, ``imgcaption optimize``): where it came from and how."""

_COMMIT = re.compile(r"^[0-9a-f]{40}$")

TokenGenerator = Callable[[Any, GenerationOptions], Any]
"""Pixels (a torch tensor or a numpy array, as the backend's processor makes them) and options to token ids."""


def _no_generator(pixel_values: Any, options: GenerationOptions) -> Any:
    raise ConfigurationError("this model was loaded without a backend that generates tokens")


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """What a caption needs from a backend: its image processor, its token generator and its token decoder.

    The Captioner only calls these three, so it never needs to know which backend loaded the model.
    """

    model: Any  # transformers.VisionEncoderDecoderModel, or a backend's own model
    processor: Any  # transformers.ViTImageProcessor, or numpy_io.ImagePreprocessor
    tokenizer: Any  # transformers PreTrainedTokenizerFast, or numpy_io.TokenDecoder
    model_id: str
    revision: str | None
    provenance: dict[str, Any]
    generate_ids: TokenGenerator = field(default=_no_generator)


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
