"""The two ports the pipeline talks to. Adapters (local files, SQLite, S3, DynamoDB) implement them.

Both are small ``typing.Protocol`` classes so an in-memory fake (``imgcaption.testing.fakes``) is a few lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from imgcaption.generation import GenerationOptions, Precision
from imgcaption.results import Caption, CaptionFailure


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A stable identity for one input: a local path or ``s3://bucket/key``, plus what pins its content."""

    uri: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None
    """Ordering hint for events about the same object (S3 event ``sequencer``); newer sorts higher."""
    explicit: bool = True
    """Named by the user (a bad one is a failure) rather than found while walking a directory."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something a source found but will not caption (e.g. a text file in a folder of photos), and why."""

    uri: str
    reason: str


@dataclass(frozen=True, slots=True)
class CaptionSignature:
    """What makes two captions of the same image comparable: model, revision, precision, decoding options."""

    model: str
    revision: str | None
    precision: Precision
    generation: GenerationOptions

    @classmethod
    def of(cls, result: Caption | CaptionFailure) -> CaptionSignature:
        return cls(result.model, result.revision, result.precision, result.generation)

    @property
    def key(self) -> str:
        return f"{self.model}@{self.revision or '-'}:{self.precision}:{self.generation.key}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The one recorded result for one input."""

    ref: ImageRef
    result: Caption | CaptionFailure


@runtime_checkable
class ImageSource(Protocol):
    """Where inputs come from."""

    def iter_refs(self) -> Iterator[ImageRef | Skipped]:
        """Every input, in a stable order; things that are not inputs come back as :class:`Skipped`."""
        ...

    def read(self, ref: ImageRef, max_bytes: int) -> bytes:
        """The raw bytes of one input, refusing more than ``max_bytes`` before downloading it.

        Raises :class:`~imgcaption.errors.ImgCaptionError` subclasses (``retryable`` for transient faults).
        """
        ...


@runtime_checkable
class CaptionStore(Protocol):
    """Where outcomes are recorded. One record per (input, signature): recording again replaces it."""

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Record a batch of outcomes durably, all or nothing."""
        ...

    def has_caption(self, ref: ImageRef, signature: CaptionSignature) -> bool:
        """True when a successful caption with this signature is already recorded (for ``--skip-existing``)."""
        ...

    def outcomes(self) -> Iterable[Outcome]:
        """Everything recorded, for export."""
        ...
