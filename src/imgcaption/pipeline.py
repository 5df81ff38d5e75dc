"""The batch pipeline: source → decode (background thread) → caption in batches → store.

Guarantee: every input the source yields ends as exactly one recorded outcome (a caption or a failure), unless the
caller asks to stop early, in which case the inputs not yet captioned come back in ``unprocessed`` untouched.
Decoding overlaps inference through a bounded queue, so memory stays flat however large the source is.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imgcaption.errors import ImgCaptionError
from imgcaption.images import LoadedImage, decode_bytes
from imgcaption.ports import CaptionSignature, CaptionStore, ImageRef, ImageSource, Outcome, Skipped
from imgcaption.results import Caption, CaptionFailure

if TYPE_CHECKING:
    from imgcaption.captioner import Captioner

logger = logging.getLogger(__name__)

Decoded = tuple[LoadedImage, float] | CaptionFailure
_Queue = queue.Queue["tuple[ImageRef, Decoded] | Skipped | _Done"]
_PREFETCH_BATCHES = 2
"""Batches the reader decodes ahead of the model: enough to keep it busy, few enough to keep memory flat."""


@dataclass
class PipelineSummary:
    """What a run did. ``captioned + failed + skipped_existing`` equals the inputs processed."""

    captioned: int = 0
    failed: int = 0
    skipped_existing: int = 0
    not_images: list[Skipped] = field(default_factory=list)
    unprocessed: list[ImageRef] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def processed(self) -> int:
        return self.captioned + self.failed

    @property
    def images_per_s(self) -> float:
        return self.processed / self.elapsed_s if self.elapsed_s > 0 else 0.0


class _Done:
    """Sentinel: the reader thread has no more inputs."""


@dataclass
class Pipeline:
    """Wire a source, a captioner and a store; :meth:`run` processes everything the source yields."""

    source: ImageSource
    store: CaptionStore
    captioner: Captioner
    batch_size: int = 8
    skip_existing: bool = False
    record_retryable_failures: bool = True
    """False for queue-driven callers (Lambda): transient failures go back to the queue instead of the store."""
    on_outcome: Callable[[Outcome], None] | None = None
    on_skipped: Callable[[Skipped], None] | None = None
    on_listed: Callable[[ImageRef], None] | None = None
    """Called on the reader thread for each input it will caption (after skip-existing): a progress bar's total."""
    should_stop: Callable[[], bool] | None = None
    """Checked before each batch; when it returns True the rest is handed back as ``unprocessed``."""

    def run(self) -> PipelineSummary:
        summary = PipelineSummary()
        started = time.perf_counter()
        signature = self.captioner.signature
        pending: _Queue = queue.Queue(maxsize=_PREFETCH_BATCHES * self.batch_size)
        stop_reading = threading.Event()
        listing_errors: list[BaseException] = []
        reader = threading.Thread(
            target=self._read_all,
            args=(pending, stop_reading, summary, signature, listing_errors),
            name="imgcaption-decode",
            daemon=True,
        )
        reader.start()
        try:
            self._caption_all(pending, summary)
        finally:
            stop_reading.set()
            _drain_unprocessed(pending, summary)
            reader.join()
            _drain_unprocessed(pending, summary)
        summary.elapsed_s = time.perf_counter() - started
        if listing_errors:  # raised after what was listed before the failure is recorded, even on an early stop
            error = listing_errors[0]
            error.add_note(
                f"imgcaption pipeline: {summary.captioned} captioned and {summary.failed} failed before this; "
                f"{len(summary.unprocessed)} listed but not processed"
            )
            raise error
        return summary

    # -------------------------------------------------------------- reader thread

    def _read_all(
        self,
        pending: _Queue,
        stop: threading.Event,
        summary: PipelineSummary,
        signature: CaptionSignature,
        listing_errors: list[BaseException],
    ) -> None:
        try:
            for item in self.source.iter_refs():
                if isinstance(item, Skipped):
                    summary.not_images.append(item)
                    _put(pending, item, stop)  # so on_skipped runs on the caller's thread
                    continue
                if stop.is_set():
                    summary.unprocessed.append(item)
                    continue
                if self.skip_existing and self.store.has_caption(item, signature):
                    summary.skipped_existing += 1
                    continue
                if self.on_listed:
                    self.on_listed(item)
                if not _put(pending, (item, self._decode(item)), stop):
                    summary.unprocessed.append(item)
        except BaseException as exc:  # handed to the main thread, which re-raises it
            listing_errors.append(exc)
        _put(pending, _Done(), stop)

    def _decode(self, ref: ImageRef) -> Decoded:
        began = time.perf_counter()
        try:
            data = self.source.read(ref, self.captioner.max_bytes)
            loaded = decode_bytes(data, source=ref.uri, max_pixels=self.captioner.max_pixels)
        except ImgCaptionError as exc:
            return self.captioner.failure(exc, ref.uri)
        return loaded, (time.perf_counter() - began) * 1000

    # -------------------------------------------------------------- main thread

    def _caption_all(self, pending: _Queue, summary: PipelineSummary) -> None:
        for batch in _batches(pending, self.batch_size, self.on_skipped):
            if self.should_stop and self.should_stop():
                summary.unprocessed.extend(ref for ref, _ in batch)
                return
            results = self._caption_batch(batch)
            outcomes = [Outcome(ref, result) for (ref, _), result in zip(batch, results, strict=True)]
            to_record = [o for o in outcomes if self.record_retryable_failures or not _is_retryable(o)]
            if to_record:
                self.store.record(to_record)
            for outcome in outcomes:
                if outcome.result.ok:
                    summary.captioned += 1
                else:
                    summary.failed += 1
                if self.on_outcome:
                    self.on_outcome(outcome)

    def _caption_batch(self, batch: list[tuple[ImageRef, Decoded]]) -> list[Caption | CaptionFailure]:
        """One inference batch: the hook a subclass wraps to time or trace the batch with its refs at hand."""
        return self.captioner.caption_decoded([decoded for _, decoded in batch])


def _put(pending: _Queue, item: tuple[ImageRef, Decoded] | Skipped | _Done, stop: threading.Event) -> bool:
    """Block until there is room, unless the consumer has stopped; False if the item was not handed over."""
    while not stop.is_set():
        try:
            pending.put(item, timeout=0.05)
        except queue.Full:
            continue
        return True
    return False


def _is_retryable(outcome: Outcome) -> bool:
    return isinstance(outcome.result, CaptionFailure) and outcome.result.retryable


def _batches(
    pending: _Queue, size: int, on_skipped: Callable[[Skipped], None] | None
) -> Iterator[list[tuple[ImageRef, Decoded]]]:
    """Group decoded inputs into batches; a batch is cut short rather than wait when the reader is done."""
    batch: list[tuple[ImageRef, Decoded]] = []
    while True:
        item = pending.get()
        if isinstance(item, Skipped):
            if on_skipped:
                on_skipped(item)
            continue
        if isinstance(item, _Done):
            if batch:
                yield batch
            return
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []


def _drain_unprocessed(pending: _Queue, summary: PipelineSummary) -> None:
    while True:
        try:
            item = pending.get_nowait()
        except queue.Empty:
            return
        if isinstance(item, tuple):
            summary.unprocessed.append(item[0])
