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
from typing import TYPE_CHECKING, Any, Protocol

from imgcaption.pipeline import Pipeline
from imgcaption.ports import ImageRef, ImageSource, Skipped
from imgcaption_aws.events import S3ObjectRef

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

    from imgcaption.pipeline import Decoded
    from imgcaption.results import Caption, CaptionFailure

DOWNLOAD = "s3_download"
DECODE = "decode"
INFERENCE = "inference_batch"
STORE_WRITE = "store_write"
NAMESPACE = "imgcaption"


class Spans(Protocol):
    """Opens a span named ``name`` about the objects ``refs``; exceptions raised inside are recorded on it."""

    def span(self, name: str, refs: Sequence[ImageRef]) -> AbstractContextManager[object]: ...


class _NoSpans:
    def span(self, name: str, refs: Sequence[ImageRef]) -> AbstractContextManager[object]:
        return nullcontext()


NO_SPANS: Spans = _NoSpans()


@dataclass(frozen=True)
class TracerSpans:
    """Each span is an X-Ray subsegment of the current trace entity, opened through ``tracer.provider``."""

    tracer: Tracer

    @contextmanager
    def span(self, name: str, refs: Sequence[ImageRef]) -> Iterator[object]:
        with self.tracer.provider.in_subsegment(name=name) as subsegment:
            segment: Any = subsegment  # its put_annotation wants a numbers.Number, which mypy never matches an int to
            if segment is not None:  # None: the SDK is on but has no trace to join (outside Lambda); nothing to say
                for key, value in annotations_for(refs).items():
                    segment.put_annotation(key, value)
                if len(refs) > 1:
                    segment.put_metadata("uris", [ref.uri for ref in refs], namespace=NAMESPACE)
            yield subsegment


def annotations_for(refs: Sequence[ImageRef]) -> dict[str, str | int]:
    """``bucket`` and ``key`` for one object; ``images`` and the shared ``bucket`` (if any) for several.

    The bucket and key are the ref's own :class:`~imgcaption_aws.uris.S3Location`; any other ref (a local path)
    is a key without a bucket.
    """
    locations = [ref.location if isinstance(ref, S3ObjectRef) else None for ref in refs]
    buckets = {location.bucket if location else "" for location in locations}
    found: dict[str, str | int] = {}
    if len(buckets) == 1 and "" not in buckets:
        found["bucket"] = next(iter(buckets))
    if len(refs) == 1:
        found["key"] = locations[0].key if locations[0] else refs[0].uri
    else:
        found["images"] = len(refs)
    return found


class TracedSource:
    """An image source whose reads are ``s3_download`` spans."""

    def __init__(self, inner: ImageSource, spans: Spans) -> None:
        self.inner = inner
        self.spans = spans

    def iter_refs(self) -> Iterator[ImageRef | Skipped]:
        return self.inner.iter_refs()

    def read(self, ref: ImageRef, max_bytes: int) -> bytes:
        with self.spans.span(DOWNLOAD, [ref]):
            return self.inner.read(ref, max_bytes)


@dataclass
class TracedPipeline(Pipeline):
    """The core pipeline with each image's fetch-and-decode in a ``decode`` span (its ``s3_download`` inside it) and
    each inference batch in an ``inference_batch`` span."""

    spans: Spans = field(default=NO_SPANS)

    def _decode(self, ref: ImageRef) -> Decoded:
        with self.spans.span(DECODE, [ref]):
            return super()._decode(ref)

    def _caption_batch(self, batch: list[tuple[ImageRef, Decoded]]) -> list[Caption | CaptionFailure]:
        with self.spans.span(INFERENCE, [ref for ref, _ in batch]):
            return super()._caption_batch(batch)
