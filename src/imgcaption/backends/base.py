"""What every backend hands the Captioner: a :class:`LoadedModel`, and the provenance file that says how it was made.

Every backend module imports this one and nothing above it, so the registry can import the backends without a
cycle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgcaption.errors import ConfigurationError, ModelLoadError
from imgcaption.generation import GenerationOptions

if TYPE_CHECKING:
    from PIL import Image

PROVENANCE_FILE = "imgcaption-model.json"
"""Written next to a model we prepared (Docker build, ``imgcaption optimize``): where it came from and how."""

_COMMIT = re.compile(r"^[0-9a-f]{40}$")

VIT_GPT2 = "vit-gpt2"
"""The family of the default model: a ``VisionEncoderDecoderModel``, decoded exactly by :mod:`.vitgpt2_exact`."""

TokenGenerator = Callable[[Any, GenerationOptions], Any]
"""Model inputs (what the backend's preprocessor made) and options to token ids."""

InputPreparer = Callable[[Sequence["Image.Image"]], Any]
"""RGB images to what the backend's token generator takes."""

TextDecoder = Callable[[Any], list[str]]
"""Token ids to caption texts, one per image."""

OptionsCheck = Callable[[GenerationOptions], GenerationOptions]
"""Generation options to the options a family will use (its default prompt filled in), or a ConfigurationError."""


def _no_generator(pixel_values: Any, options: GenerationOptions) -> Any:
    raise ConfigurationError("this model was loaded without a backend that generates tokens")


def refuse_prompt(family: str) -> OptionsCheck:
    """The options check of a family whose models take no text with the image."""

    def check(options: GenerationOptions) -> GenerationOptions:
        if options.prompt is not None:
            raise ConfigurationError(
                f"{family} models caption from the image alone and take no prompt; leave --prompt "
                "(IMGCAPTION_PROMPT, prompt=) unset, or use a family that takes one (README: model families)"
            )
        return options

    return check


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """What a caption needs from a backend, one callable per stage: inputs, token ids, texts, and the options check.

    The Captioner only calls these, so it never needs to know which backend or model family loaded the model.
    Left unset, ``prepare_inputs`` is the image processor's ``pixel_values`` and ``decode_texts`` the tokenizer's
    ``batch_decode`` (what the vit-gpt2 backends need), and ``check_options`` refuses a prompt.
    """

    model: Any  # transformers.VisionEncoderDecoderModel, or a backend's own model
    processor: Any  # transformers.ViTImageProcessor, numpy_io.ImagePreprocessor, or a family's AutoProcessor
    tokenizer: Any  # transformers PreTrainedTokenizerFast, or numpy_io.TokenDecoder
    model_id: str
    revision: str | None
    provenance: dict[str, Any]
    generate_ids: TokenGenerator = field(default=_no_generator)
    family: str = VIT_GPT2
    device: str = "cpu"
    prepare_inputs: InputPreparer | None = None
    decode_texts: TextDecoder | None = None
    check_options: OptionsCheck | None = None
    default_generation: GenerationOptions = field(default_factory=GenerationOptions)
    """The family's default options, under whatever the caller or the settings set explicitly."""

    def inputs_for(self, images: Sequence[Image.Image]) -> Any:
        if self.prepare_inputs is not None:
            return self.prepare_inputs(images)
        return self.processor(images=list(images), return_tensors="pt").pixel_values

    def texts_of(self, token_ids: Any) -> list[str]:
        if self.decode_texts is not None:
            return self.decode_texts(token_ids)
        texts = self.tokenizer.batch_decode(token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return [text.strip() for text in texts]

    def options_for(self, options: GenerationOptions) -> GenerationOptions:
        check = self.check_options or refuse_prompt(self.family)
        return check(options)


def read_provenance(directory: Path) -> dict[str, Any]:
    file = directory / PROVENANCE_FILE
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"unreadable {PROVENANCE_FILE}: {exc}", source=str(directory)) from exc
    return data if isinstance(data, dict) else {}


def read_artifact_configs(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """An artifact's ``config.json`` and ``generation_config.json`` (empty when absent), as both int8 backends read
    them; a missing or damaged ``config.json`` raises (each backend reports it with the rebuild command)."""
    config = json.loads((directory / "config.json").read_text())
    generation_path = directory / "generation_config.json"
    generation_config = json.loads(generation_path.read_text()) if generation_path.is_file() else {}
    return config, generation_config


def local_revision(directory: Path, provenance: dict[str, Any]) -> str | None:
    """A local dir knows its revision from our provenance file, or from a hub cache ``snapshots/<commit>`` path."""
    recorded = provenance.get("revision")
    if isinstance(recorded, str):
        return recorded
    return directory.name if _COMMIT.match(directory.name) else None
