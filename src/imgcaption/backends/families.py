"""Which model families imgcaption captions with, and how a model directory's ``config.json`` names its family.

Pure data and a lookup, no torch: the registry reads the family before it imports a runtime, so an unsupported
model fails fast with the list below instead of a transformers traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from imgcaption.backends.base import VIT_GPT2, refuse_prompt
from imgcaption.errors import ConfigurationError, ModelLoadError
from imgcaption.generation import GenerationOptions

PromptKind = Literal["none", "prefix", "task", "instruction"]

FLORENCE2_TASKS = ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>")
"""Florence-2's captioning task tokens; its other tasks answer with boxes or polygons, not captions."""

DEFAULT_INSTRUCTION = "Describe this image in one sentence."


@dataclass(frozen=True, slots=True)
class Family:
    """A kind of captioning model: the transformers class that runs it and what text it takes with the image."""

    name: str
    model_class: str  # a transformers class name; "AutoModelForImageTextToText" for chat models
    prompt: PromptKind
    default_prompt: str | None
    defaults: GenerationOptions
    description: str

    def check_options(self, options: GenerationOptions) -> GenerationOptions:
        """Fill in the family's default prompt; refuse a prompt or a length limit the family cannot honour.

        Needs no model: the caption signature of a model not loaded here (``backfill --skip-existing``) uses it too.
        """
        kind = self.prompt
        if kind == "none":
            return refuse_prompt(self.name)(options)
        if options.prompt is None and self.default_prompt is not None:
            options = options.with_overrides(prompt=self.default_prompt)
        if kind == "task" and options.prompt not in FLORENCE2_TASKS:
            raise ConfigurationError(
                f"Florence-2's prompt is a captioning task token, one of {', '.join(FLORENCE2_TASKS)}; "
                f"got {options.prompt!r}"
            )
        if kind == "instruction" and options.max_new_tokens is None:
            raise ConfigurationError(
                "a chat model's max_length would count its instruction and image tokens; set max_new_tokens "
                "(--max-new-tokens, IMGCAPTION_MAX_NEW_TOKENS) instead"
            )
        return options


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            VIT_GPT2,
            "VisionEncoderDecoderModel",
            "none",
            None,
            GenerationOptions(),
            "vit-gpt2 and other VisionEncoderDecoderModel checkpoints (the default model)",
        ),
        Family(
            "blip",
            "BlipForConditionalGeneration",
            "prefix",
            None,
            GenerationOptions(num_beams=3, max_new_tokens=30),
            "BLIP captioning, e.g. Salesforce/blip-image-captioning-base; an optional prompt starts the caption",
        ),
        Family(
            "git",
            "GitForCausalLM",
            "none",
            None,
            GenerationOptions(num_beams=3, max_new_tokens=30),
            "GIT, e.g. microsoft/git-base-coco",
        ),
        Family(
            "florence2",
            "Florence2ForConditionalGeneration",
            "task",
            FLORENCE2_TASKS[0],
            GenerationOptions(num_beams=3, max_new_tokens=128),
            "Florence-2, e.g. microsoft/Florence-2-base; the prompt is a task token: " + ", ".join(FLORENCE2_TASKS),
        ),
        Family(
            "chat",
            "AutoModelForImageTextToText",
            "instruction",
            DEFAULT_INSTRUCTION,
            GenerationOptions(num_beams=1, max_new_tokens=64),
            "chat vision-language models with a chat template (SmolVLM, LLaVA, Idefics3…); the prompt is the "
            "instruction",
        ),
    )
}

_BY_MODEL_TYPE = {"vision-encoder-decoder": VIT_GPT2, "blip": "blip", "git": "git", "florence2": "florence2"}


def supported_families() -> str:
    """One line per family, for error messages."""
    return "; ".join(f"{family.name}: {family.description}" for family in FAMILIES.values())


def detect_family(config: Mapping[str, Any], source: str, chat_model_types: Sequence[str] = ()) -> Family:
    """The family of a model from its ``config.json``: ``model_type`` first, ``architectures`` to confirm.

    ``chat_model_types`` are the model types transformers' ``AutoModelForImageTextToText`` runs; any of them not
    named above is a chat model (the registry checks its processor has a chat template).
    """
    model_type = str(config.get("model_type") or "")
    architectures = [str(name) for name in config.get("architectures") or []]
    name = _BY_MODEL_TYPE.get(model_type)
    if name is None and model_type in chat_model_types:
        name = "chat"
    family = FAMILIES.get(name or "")
    # e.g. BlipForQuestionAnswering: the model_type of a captioner, but no captions
    if (
        family is not None
        and family.prompt != "instruction"
        and architectures
        and family.model_class not in architectures
    ):
        family = None
    if family is None:
        described = f"model_type {model_type!r}" if model_type else "no model_type in its config.json"
        if architectures:
            described += f" ({', '.join(architectures)})"
        raise ModelLoadError(
            f"{source} is not a captioning model imgcaption can run: {described}. Supported families: "
            f"{supported_families()}.",
            source=source,
        )
    return family
