"""Typed outcomes: every input ends as exactly one :class:`Caption` or one :class:`CaptionFailure`."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from imgcaption.generation import GenerationOptions, Precision


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Outcome(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="The input as given: a path, an s3:// URI, or a label such as <bytes>.")
    model: str = Field(description="Model id or local directory used.")
    revision: str | None = Field(default=None, description="Model revision (commit) when known.")
    precision: Precision = "fp32"
    generation: GenerationOptions = Field(default_factory=GenerationOptions)
    sha256: str | None = Field(default=None, description="SHA-256 of the input bytes, when they were read.")
    created_at: AwareDatetime = Field(default_factory=utc_now)

    @property
    def ok(self) -> bool:
        return isinstance(self, Caption)


class Caption(_Outcome):
    """A caption and its provenance: enough to reproduce it or to know it is stale."""

    status: Literal["ok"] = "ok"
    text: str
    width: int = Field(ge=1, description="Image width after EXIF orientation, in pixels.")
    height: int = Field(ge=1, description="Image height after EXIF orientation, in pixels.")
    elapsed_ms: float = Field(ge=0, description="Wall time spent on this image (decode + its share of inference).")

    def _repr_html_(self) -> str:
        return (
            f"<figure><figcaption><b>{html.escape(self.text)}</b><br>"
            f"<small>{html.escape(self.source)} · {self.width}×{self.height} · {html.escape(self.model)}</small>"
            "</figcaption></figure>"
        )


class CaptionFailure(_Outcome):
    """An input that could not be captioned, recorded so that nothing is lost silently."""

    status: Literal["failed"] = "failed"
    error_type: str = Field(description="Class name of the error, e.g. ImageDecodeError.")
    message: str
    retryable: bool = False

    def _repr_html_(self) -> str:
        return (
            f"<div style='color:#b00'><b>{html.escape(self.error_type)}</b>: {html.escape(self.message)}"
            f"<br><small>{html.escape(self.source)}</small></div>"
        )


CaptionResult = Annotated[Caption | CaptionFailure, Field(discriminator="status")]
"""Either outcome; ``status`` tells them apart in JSON."""

caption_result_adapter: TypeAdapter[Caption | CaptionFailure] = TypeAdapter(CaptionResult)
