"""Spans around the stages of one invocation (download, decode, inference batch, store write) for AWS X-Ray.

The processor asks its :class:`Spans` for one context manager per stage. :data:`NO_SPANS` (the local worker, most
tests) costs nothing and imports nothing; :class:`TracerSpans` opens an X-Ray subsegment through powertools'
``Tracer``, which the Lambda handler creates (and which does nothing unless the function runs with active tracing).

Annotations are what X-Ray indexes for search (``annotation.key = "photos/cat.jpg"``): a span about one object carries
its ``bucket`` and ``key``; a batch span carries ``images`` (how many), ``bucket`` when they share one, and their
URIs as metadata.

The download and the decode run on the pipeline's reader thread. X-Ray's Lambda context keeps one facade segment per
thread, built from the invocation's trace header, so those spans join the invocation's trace next to ``## handler``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from imgcaption.pipeline import Pipeline
from imgcaption.ports import ImageRef, ImageSource, Skipped
from imgcaption.results import Caption, CaptionFailure

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

    from imgcaption.captioner import Captioner
    from imgcaption.images import LoadedImage
    from imgcaption.pipeline import Decoded

DOWNLOAD = "s3_download"
DECODE = "decode"
INFERENCE = "inference_batch"
STORE_WRITE = "store_write"
NAMESPACE = "imgcaption"


class Spans(Protocol):
    """Opens a span named ``name`` about the objects ``uris``; exceptions raised inside are recorded on it."""

    def span(self, name: str, uris: Sequence[str]) -> AbstractContextManager[object]: ...


class _NoSpans:
    def span(self, name: str, uris: Sequence[str]) -> AbstractContextManager[object]:
        return nullcontext()


NO_SPANS: Spans = _NoSpans()


@dataclass(frozen=True)
class TracerSpans:
    """Each span is an X-Ray subsegment of the current trace entity, opened through ``tracer.provider``."""

    tracer: Tracer

    @contextmanager
    def span(self, name: str, uris: Sequence[str]) -> Iterator[object]:
        with self.tracer.provider.in_subsegment(name=name) as subsegment:
            segment: Any = subsegment  # its put_annotation wants a numbers.Number, which mypy never matches an int to
            if segment is not None:  # None: the SDK is on but has no trace to join (outside Lambda); nothing to say
                for key, value in annotations_for(uris).items():
                    segment.put_annotation(key, value)
                if len(uris) > 1:
                    segment.put_metadata("uris", list(uris), namespace=NAMESPACE)
            yield subsegment


def annotations_for(uris: Sequence[str]) -> dict[str, str | int]:
    """``bucket`` and ``key`` for one object; ``images`` and the shared ``bucket`` (if any) for several."""
    locations = [_split(uri) for uri in uris]
    buckets = {bucket for bucket, _ in locations}
    found: dict[str, str | int] = {}
    if len(buckets) == 1 and "" not in buckets:
        found["bucket"] = next(iter(buckets))
    if len(locations) == 1:
        found["key"] = locations[0][1]
    else:
        found["images"] = len(locations)
    return found


def _split(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://`` URI; anything else (a local path) is a key without a bucket."""
    if uri.startswith("s3://"):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return bucket, key
    return "", uri


class TracedSource:
    """An image source whose reads are ``s3_download`` spans."""

    def __init__(self, inner: ImageSource, spans: Spans) -> None:
        self.inner = inner
        self.spans = spans

    def iter_refs(self) -> Iterator[ImageRef | Skipped]:
        return self.inner.iter_refs()

    def read(self, ref: ImageRef, max_bytes: int) -> bytes:
        with self.spans.span(DOWNLOAD, [ref.uri]):
            return self.inner.read(ref, max_bytes)


class _TracedCaptioner:
    """The captioner with each inference batch in an ``inference_batch`` span; everything else passes through."""

    def __init__(self, inner: Captioner, spans: Spans) -> None:
        self._inner = inner
        self._spans = spans

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def caption_decoded(
        self, decoded: Sequence[tuple[LoadedImage, float] | CaptionFailure], **options: Any
    ) -> list[Caption | CaptionFailure]:
        uris = [entry.source if isinstance(entry, CaptionFailure) else entry[0].source for entry in decoded]
        with self._spans.span(INFERENCE, uris):
            return self._inner.caption_decoded(decoded, **options)


def traced_captioner(captioner: Captioner, spans: Spans) -> Captioner:
    """``captioner`` itself when nothing is traced, otherwise a stand-in that traces its inference batches."""
    if spans is NO_SPANS:
        return captioner
    return cast("Captioner", _TracedCaptioner(captioner, spans))


@dataclass
class TracedPipeline(Pipeline):
    """The core pipeline with each image's fetch-and-decode in a ``decode`` span (its ``s3_download`` inside it)."""

    spans: Spans = field(default=NO_SPANS)

    def _decode(self, ref: ImageRef) -> Decoded:
        with self.spans.span(DECODE, [ref.uri]):
            return super()._decode(ref)
