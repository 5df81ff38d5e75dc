"""The batch pipeline over in-memory ports: exactly one recorded outcome per input, whatever happens.

The in-memory store keeps one record per (uri, signature), as the real stores do, so a second write of an input
would be invisible in its records: the tests count :attr:`MemoryStore.writes` instead. Caught (checked on a copy of
the code): a pipeline that records each failure twice (the records alone looked the same).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from PIL import Image

from imagefactory import encode
from imgcaption import Captioner, errors
from imgcaption.pipeline import Pipeline
from imgcaption.ports import ImageRef, Outcome, Skipped
from imgcaption.testing import MemorySource, MemoryStore


def jpeg(color: str) -> bytes:
    return encode(Image.new("RGB", (48, 32), color), "JPEG")


@pytest.fixture
def mixed_source() -> MemorySource:
    return MemorySource(
        {
            "mem://a.jpg": jpeg("red"),
            "mem://b.jpg": b"<html>not an image</html>",
            "mem://c.jpg": jpeg("blue"),
            "mem://d.jpg": errors.SourceError("S3 said 503", source="mem://d.jpg", retryable=True),
            "mem://e.jpg": jpeg("green"),
        },
        skipped=[Skipped("mem://notes.txt", "not an image file")],
    )


def test_every_input_ends_as_exactly_one_recorded_outcome(
    tiny_captioner: Captioner, mixed_source: MemorySource
) -> None:
    store = MemoryStore()
    summary = Pipeline(mixed_source, store, tiny_captioner, batch_size=2).run()
    assert store.written_uris() == sorted(mixed_source.images)  # each input written once, none twice
    recorded = store.by_uri()
    assert [recorded[uri].result.status for uri in sorted(recorded)] == ["ok", "failed", "ok", "failed", "ok"]
    assert (summary.captioned, summary.failed, summary.skipped_existing) == (3, 2, 0)
    assert summary.not_images == [Skipped("mem://notes.txt", "not an image file")]
    assert summary.unprocessed == []
    assert summary.images_per_s > 0


def test_outcomes_are_recorded_once_per_batch(tiny_captioner: Captioner, mixed_source: MemorySource) -> None:
    store = MemoryStore()
    Pipeline(mixed_source, store, tiny_captioner, batch_size=2).run()
    assert store.batches == [2, 2, 1]


def test_callbacks_see_every_outcome_and_skip_on_the_callers_thread(
    tiny_captioner: Captioner, mixed_source: MemorySource
) -> None:
    seen: list[tuple[str, str]] = []
    caller = threading.get_ident()

    def remember(item: Outcome | Skipped) -> None:
        assert threading.get_ident() == caller
        seen.append((item.ref.uri if isinstance(item, Outcome) else item.uri, type(item).__name__))

    Pipeline(mixed_source, MemoryStore(), tiny_captioner, on_outcome=remember, on_skipped=remember).run()
    assert sorted(seen) == sorted([(uri, "Outcome") for uri in mixed_source.images] + [("mem://notes.txt", "Skipped")])


def test_skip_existing_captions_exactly_the_rest(tiny_captioner: Captioner) -> None:
    first = MemorySource({"mem://1": jpeg("red"), "mem://2": jpeg("blue")})
    store = MemoryStore()
    Pipeline(first, store, tiny_captioner).run()
    everything = MemorySource({**first.images, "mem://3": jpeg("green"), "mem://4": b"broken"})
    written_by_first_run = len(store.writes)
    summary = Pipeline(everything, store, tiny_captioner, skip_existing=True).run()
    assert summary.skipped_existing == 2
    assert everything.reads == ["mem://3", "mem://4"]
    assert sorted(o.ref.uri for o in store.writes[written_by_first_run:]) == ["mem://3", "mem://4"]
    assert len(store.outcomes()) == 4


def test_failures_are_retried_by_skip_existing(tiny_captioner: Captioner) -> None:
    store = MemoryStore()
    Pipeline(MemorySource({"mem://x": b"broken"}), store, tiny_captioner).run()
    fixed = MemorySource({"mem://x": jpeg("red")})
    summary = Pipeline(fixed, store, tiny_captioner, skip_existing=True).run()
    assert summary.captioned == 1
    assert [o.result.status for o in store.writes] == ["failed", "ok"]
    assert store.by_uri()["mem://x"].result.ok


def test_captioning_the_same_image_twice_keeps_one_record(tiny_captioner: Captioner) -> None:
    source = MemorySource({"mem://1": jpeg("red")})
    store = MemoryStore()
    Pipeline(source, store, tiny_captioner).run()
    Pipeline(source, store, tiny_captioner).run()
    assert store.written_uris() == ["mem://1", "mem://1"]  # captioned and written once per run...
    assert len(store.outcomes()) == 1  # ...and the second write replaced the first


def test_queue_driven_callers_can_keep_transient_failures_out_of_the_store(
    tiny_captioner: Captioner, mixed_source: MemorySource
) -> None:
    store = MemoryStore()
    retry: list[str] = []
    Pipeline(
        mixed_source,
        store,
        tiny_captioner,
        record_retryable_failures=False,
        on_outcome=lambda o: retry.append(o.ref.uri) if not o.result.ok and o.result.retryable else None,  # type: ignore[union-attr]
    ).run()
    assert store.written_uris() == sorted(set(mixed_source.images) - {"mem://d.jpg"})
    assert retry == ["mem://d.jpg"]
    assert store.by_uri()["mem://b.jpg"].result.status == "failed"  # bad input is final, recorded


def test_a_stop_request_hands_back_what_was_not_captioned(tiny_captioner: Captioner) -> None:
    source = MemorySource({f"mem://{i}": jpeg("red") for i in range(10)})
    store = MemoryStore()
    batches_done = 0

    def stop_after_first_batch() -> bool:
        nonlocal batches_done
        batches_done += 1
        return batches_done > 1

    summary = Pipeline(source, store, tiny_captioner, batch_size=3, should_stop=stop_after_first_batch).run()
    recorded = set(store.by_uri())
    assert len(store.writes) == len(recorded) == 3 == summary.captioned
    assert sorted(ref.uri for ref in summary.unprocessed) == sorted(set(source.images) - recorded)


def test_a_failing_listing_is_raised_not_swallowed(tiny_captioner: Captioner) -> None:
    class BrokenListing(MemorySource):
        def iter_refs(self) -> Iterator[ImageRef | Skipped]:
            yield ImageRef("mem://ok")
            raise errors.SourceError("listing failed: access denied", source="s3://bucket/")

    store = MemoryStore()
    with pytest.raises(errors.SourceError, match="access denied"):
        Pipeline(BrokenListing({"mem://ok": jpeg("red")}), store, tiny_captioner).run()
    assert store.written_uris() == ["mem://ok"]  # what was listed before the failure is still recorded, once


def test_a_failing_listing_is_raised_even_when_the_run_was_asked_to_stop(tiny_captioner: Captioner) -> None:
    class BrokenListing(MemorySource):
        def iter_refs(self) -> Iterator[ImageRef | Skipped]:
            yield ImageRef("mem://a")
            yield ImageRef("mem://b")
            raise errors.SourceError("listing failed: access denied", source="s3://bucket/")

    source = BrokenListing({"mem://a": jpeg("red"), "mem://b": jpeg("blue")})
    with pytest.raises(errors.SourceError, match="access denied") as raised:
        Pipeline(source, MemoryStore(), tiny_captioner, batch_size=8, should_stop=lambda: True).run()
    assert "2 listed but not processed" in "".join(raised.value.__notes__)


def test_a_failing_store_stops_the_run_loudly(tiny_captioner: Captioner) -> None:
    class FullDisk(MemoryStore):
        def record(self, outcomes: object) -> None:
            raise errors.StoreError("disk full", retryable=True)

    source = MemorySource({f"mem://{i}": jpeg("red") for i in range(20)})
    with pytest.raises(errors.StoreError, match="disk full"):
        Pipeline(source, FullDisk(), tiny_captioner, batch_size=2).run()
