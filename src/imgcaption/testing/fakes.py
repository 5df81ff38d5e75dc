"""In-memory implementations of the ports, for unit tests and notebooks."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence

from imgcaption.errors import ImageNotFoundError, ImageTooLargeError, ImgCaptionError
from imgcaption.ports import CaptionSignature, ImageRef, Outcome, Skipped


class MemorySource:
    """Images held as bytes under URIs. A value that is an exception is raised when that input is read."""

    def __init__(self, images: Mapping[str, bytes | ImgCaptionError], skipped: Iterable[Skipped] = ()) -> None:
        self.images = dict(images)
        self.skipped = list(skipped)
        self.reads: list[str] = []

    def iter_refs(self) -> Iterator[ImageRef | Skipped]:
        yield from self.skipped
        for uri, value in self.images.items():
            yield ImageRef(uri, size=len(value) if isinstance(value, bytes) else None)

    def read(self, ref: ImageRef, max_bytes: int) -> bytes:
        self.reads.append(ref.uri)
        value = self.images.get(ref.uri)
        if value is None:
            raise ImageNotFoundError("no such image", source=ref.uri)
        if isinstance(value, ImgCaptionError):
            raise value
        if len(value) > max_bytes:
            raise ImageTooLargeError(f"{len(value)} bytes exceeds the byte cap of {max_bytes}", source=ref.uri)
        return value


class MemoryStore:
    """Outcomes keyed by (uri, signature), like the real stores. Thread-safe, as the pipeline requires."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], Outcome] = {}
        self._lock = threading.Lock()
        self.batches: list[int] = []
        """The size of each :meth:`record` call, in order."""
        self.writes: list[Outcome] = []
        """Every outcome ever recorded, in order, repeats included: the records keep only the last one per key,
        so only this shows an input recorded twice."""

    def record(self, outcomes: Sequence[Outcome]) -> None:
        with self._lock:
            for outcome in outcomes:
                key = (outcome.ref.uri, CaptionSignature.of(outcome.result).key)
                self._records[key] = outcome
            self.batches.append(len(outcomes))
            self.writes.extend(outcomes)

    def written_uris(self) -> list[str]:
        """The URI of every outcome ever recorded, sorted, repeats included."""
        with self._lock:
            return sorted(outcome.ref.uri for outcome in self.writes)

    def has_caption(self, ref: ImageRef, signature: CaptionSignature) -> bool:
        with self._lock:
            found = self._records.get((ref.uri, signature.key))
        return found is not None and found.result.ok

    def outcomes(self) -> list[Outcome]:
        with self._lock:
            return list(self._records.values())

    def by_uri(self) -> dict[str, Outcome]:
        return {outcome.ref.uri: outcome for outcome in self.outcomes()}
