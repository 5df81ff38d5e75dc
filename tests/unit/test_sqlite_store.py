"""The SQLite store: one durable record per (input, signature), safe to query from the pipeline's decode thread."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from PIL import Image

from imagefactory import encode
from imgcaption import Captioner
from imgcaption.errors import StoreError
from imgcaption.generation import GenerationOptions
from imgcaption.local.sqlite_store import SQLiteStore
from imgcaption.pipeline import Pipeline
from imgcaption.ports import CaptionSignature, CaptionStore, ImageRef, Outcome
from imgcaption.results import Caption, CaptionFailure
from imgcaption.testing import MemorySource

GREEDY = GenerationOptions.greedy()


def caption(uri: str, text: str = "a cat", *, model: str = "m", generation: GenerationOptions | None = None) -> Caption:
    return Caption(
        text=text, source=uri, model=model, generation=generation or GenerationOptions(), width=4, height=3,
        elapsed_ms=1.0,
    )  # fmt: skip


def failure(uri: str, *, model: str = "m") -> CaptionFailure:
    return CaptionFailure(source=uri, model=model, error_type="ImageDecodeError", message="truncated")


def outcome(result: Caption | CaptionFailure, etag: str | None = None) -> Outcome:
    return Outcome(ImageRef(result.source, etag=etag, size=10, explicit=False), result)


SIGNATURE = CaptionSignature("m", None, "fp32", GenerationOptions())


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "sub" / "captions.db")


def test_it_is_a_caption_store(store: SQLiteStore) -> None:
    assert isinstance(store, CaptionStore)


def test_the_database_and_its_directory_are_created_in_wal_mode(store: SQLiteStore) -> None:
    assert store.path.is_file()
    (mode,) = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"


def test_outcomes_round_trip_with_their_input_identity(store: SQLiteStore) -> None:
    recorded = [outcome(caption("/p/a.jpg"), etag="e1"), outcome(failure("/p/b.jpg"))]
    store.record(recorded)
    assert sorted(store.outcomes(), key=lambda o: o.ref.uri) == recorded


def test_recording_the_same_input_and_signature_again_replaces_the_record(store: SQLiteStore) -> None:
    store.record([outcome(failure("/p/a.jpg"))])
    store.record([outcome(caption("/p/a.jpg", "a dog"))])
    (only,) = store.outcomes()
    assert isinstance(only.result, Caption)
    assert only.result.text == "a dog"


def test_a_failure_never_replaces_a_caption_of_the_same_content(store: SQLiteStore) -> None:
    store.record([outcome(caption("/p/a.jpg", "a dog"), etag="v1")])
    store.record([outcome(failure("/p/a.jpg"), etag="v1")])  # e.g. unreadable on a rerun
    (kept,) = store.outcomes()
    assert isinstance(kept.result, Caption) and kept.result.text == "a dog"
    store.record([outcome(failure("/p/a.jpg"), etag="v2")])  # the file changed and is now broken: say so
    (replaced,) = store.outcomes()
    assert replaced.result.status == "failed"


def test_a_different_model_or_options_is_a_separate_record(store: SQLiteStore) -> None:
    store.record([outcome(caption("/p/a.jpg"))])
    store.record([outcome(caption("/p/a.jpg", model="other"))])
    store.record([outcome(caption("/p/a.jpg", generation=GREEDY))])
    assert store.count() == 3


def test_has_caption_is_true_only_for_a_success_with_the_same_signature(store: SQLiteStore) -> None:
    store.record([outcome(caption("/p/ok.jpg")), outcome(failure("/p/bad.jpg"))])
    assert store.has_caption(ImageRef("/p/ok.jpg"), SIGNATURE)
    assert not store.has_caption(ImageRef("/p/bad.jpg"), SIGNATURE)  # failures are retried
    assert not store.has_caption(ImageRef("/p/new.jpg"), SIGNATURE)
    other = CaptionSignature("m", None, "fp32", GREEDY)
    assert not store.has_caption(ImageRef("/p/ok.jpg"), other)


def test_has_caption_is_false_once_the_file_changed(store: SQLiteStore) -> None:
    store.record([outcome(caption("/p/a.jpg"), etag="v1")])
    assert store.has_caption(ImageRef("/p/a.jpg", etag="v1"), SIGNATURE)
    assert not store.has_caption(ImageRef("/p/a.jpg", etag="v2"), SIGNATURE)


def test_records_survive_closing_and_reopening(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "c.db") as first:
        first.record([outcome(caption("/p/a.jpg"))])
    with SQLiteStore(tmp_path / "c.db") as again:
        assert [o.ref.uri for o in again.outcomes()] == ["/p/a.jpg"]


def test_a_batch_is_recorded_all_or_nothing(store: SQLiteStore) -> None:
    store.record([outcome(caption("/p/a.jpg"))])
    poisoned = [outcome(caption("/p/b.jpg")), Outcome(ImageRef(None), caption("/p/c.jpg"))]  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        store.record(poisoned)
    assert [o.ref.uri for o in store.outcomes()] == ["/p/a.jpg"]


def test_a_database_from_a_newer_version_is_refused_not_damaged(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    sqlite3.connect(path).execute("PRAGMA user_version = 99").connection.commit()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(path)


def test_a_path_that_cannot_be_a_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(StoreError, match="cannot open"):
        SQLiteStore(tmp_path / "not-a-dir" / "captions.db")


def test_has_caption_from_another_thread_while_recording(store: SQLiteStore) -> None:
    """The pipeline's decode thread asks has_caption while the main thread records."""
    errors: list[BaseException] = []
    done = threading.Event()

    def ask() -> None:
        try:
            while not done.is_set():
                store.has_caption(ImageRef("/p/0.jpg"), SIGNATURE)
        except BaseException as exc:
            errors.append(exc)

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        for index in range(200):
            store.record([outcome(caption(f"/p/{index}.jpg"))])
    finally:
        done.set()
        asker.join()
    assert errors == []
    assert store.count() == 200


def test_the_pipeline_records_one_outcome_per_input_and_skips_what_it_has(
    tiny_captioner: Captioner, store: SQLiteStore
) -> None:
    images = {f"mem://{index}.png": encode(Image.new("RGB", (20, 20), "red"), "PNG") for index in range(5)}
    source = MemorySource({**images, "mem://bad.png": b"nope"})
    first = Pipeline(source, store, tiny_captioner, batch_size=2).run()
    assert (first.captioned, first.failed) == (5, 1)
    again = Pipeline(source, store, tiny_captioner, batch_size=2, skip_existing=True).run()
    assert (again.captioned, again.failed, again.skipped_existing) == (0, 1, 5)  # only the failure is retried
    assert store.count() == 6
    assert store.count("failed") == 1
