"""Generation options: the knobs of ``model.generate`` that change a caption.

The defaults reproduce the original system exactly (``generate(max_length=16, num_beams=4)``), so a caption made
with default options is the caption that system would have stored.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Precision = Literal["fp32", "int8", "fp16", "bf16"]
"""How the model computes. ``fp32`` is exact (same tokens as the original system); ``int8`` is the CPU fast mode;
``fp16`` and ``bf16`` are the GPU modes (the default on a GPU)."""

PROMPT_MAX_CHARS = 1000


class GenerationOptions(BaseModel):
    """Decoding settings. Frozen and hashable so they can be part of a caption's identity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_beams: int = Field(default=4, ge=1, le=16, description="Beam width; 1 is greedy decoding.")
    max_length: int | None = Field(
        default=16, ge=2, le=256, description="Total token budget including the start token (original system: 16)."
    )
    max_new_tokens: int | None = Field(
        default=None, ge=1, le=255, description="New-token budget; when set it replaces max_length."
    )
    prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=PROMPT_MAX_CHARS,
        description="Text the model is given with the image: a caption prefix (BLIP), a task token (Florence-2) or "
        "an instruction (chat models). Families that take none refuse one.",
    )

    @model_validator(mode="after")
    def _one_length_limit(self) -> GenerationOptions:
        if self.max_new_tokens is not None and self.max_length is not None:
            # max_new_tokens wins, as in transformers; drop max_length so the identity key is unambiguous.
            object.__setattr__(self, "max_length", None)
        if self.max_new_tokens is None and self.max_length is None:
            raise ValueError("set max_length or max_new_tokens")
        return self

    @classmethod
    def greedy(cls, max_new_tokens: int = 15) -> GenerationOptions:
        return cls(num_beams=1, max_new_tokens=max_new_tokens)

    def with_overrides(self, **changes: Any) -> GenerationOptions:
        """A copy with some fields replaced; ``None`` values mean "keep mine"."""
        updates = {k: v for k, v in changes.items() if v is not None}
        if "max_new_tokens" in updates:
            updates.setdefault("max_length", None)
        return GenerationOptions.model_validate({**self.model_dump(), **updates})

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``transformers`` ``generate``."""
        kwargs: dict[str, Any] = {"num_beams": self.num_beams, "do_sample": False}
        if self.max_new_tokens is not None:
            kwargs["max_new_tokens"] = self.max_new_tokens
        else:
            kwargs["max_length"] = self.max_length
        return kwargs

    @property
    def total_length(self) -> int:
        """Total length including the decoder start token, as ``generate`` computes it."""
        if self.max_new_tokens is not None:
            return 1 + self.max_new_tokens
        assert self.max_length is not None  # guaranteed by the validator
        return self.max_length

    @property
    def key(self) -> str:
        """A short canonical string, stable across versions, used in store identities."""
        limit = f"new{self.max_new_tokens}" if self.max_new_tokens is not None else f"len{self.max_length}"
        key = f"beams{self.num_beams}-{limit}"
        if self.prompt is not None:  # only then, so the keys of captions made without a prompt never change
            key += f"-prompt{hashlib.sha256(self.prompt.encode()).hexdigest()[:16]}"
        return key
