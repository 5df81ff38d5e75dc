"""The embedded default store: one SQLite file, one row per (input URI, caption signature).

WAL mode with a commit (and fsync) per batch: a run killed at any moment loses at most the batch in flight, and
readers (``imgcaption export``) never block a running ``caption``. The pipeline asks :meth:`SQLiteStore.has_caption`
from its decode thread while the main thread records, so the one connection is shared under a lock.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from imgcaption.errors import StoreError
from imgcaption.ports import CaptionSignature, ImageRef, Outcome
from imgcaption.results import caption_result_adapter

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    uri         TEXT NOT NULL,
    signature   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    text        TEXT,
    model       TEXT NOT NULL,
    version_id  TEXT,
    etag        TEXT,
    size        INTEGER,
    sequencer   TEXT,
    explicit    INTEGER NOT NULL DEFAULT 1,
    result      TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (uri, signature)
);
CREATE INDEX IF NOT EXISTS outcomes_by_time ON outcomes (recorded_at);
"""

_UPSERT = """
INSERT INTO outcomes (uri, signature, status, text, model, version_id, etag, size, sequencer, explicit, result,
                      recorded_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (uri, signature) DO UPDATE SET
    status = excluded.status, text = excluded.text, model = excluded.model, version_id = excluded.version_id,
    etag = excluded.etag, size = excluded.size, sequencer = excluded.sequencer, explicit = excluded.explicit,
    result = excluded.result, recorded_at = excluded.recorded_at
-- A failure never replaces a caption of the same content (a permission or I/O error on a rerun, say): the
-- caption stays; a changed file, or a caption, always replaces the record.
WHERE excluded.status = 'ok' OR outcomes.status <> 'ok'
   OR outcomes.etag IS NOT excluded.etag OR outcomes.version_id IS NOT excluded.version_id
"""


class SQLiteStore:
    """A :class:`~imgcaption.ports.CaptionStore` in a SQLite file (created with its parent directory if missing)."""

    def __init__(self, path: str | Path, *, timeout_s: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread=False: the pipeline's decode thread calls has_caption; self._lock serialises use.
            self._conn = sqlite3.connect(self.path, timeout=timeout_s, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")  # a committed batch survives power loss too
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the caption database: {exc}", source=str(self.path)) from exc

    # ---------------------------------------------------------------- CaptionStore

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Insert or replace the outcomes in one transaction: all of the batch is durable, or none of it."""
        now = datetime.now(UTC).isoformat()
        rows = [_row(outcome, now) for outcome in outcomes]
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.executemany(_UPSERT, rows)
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:  # a failed COMMIT can leave it open; the next BEGIN would fail
                        with contextlib.suppress(sqlite3.Error):  # keep the original error, not the rollback's
                            self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(
                    f"cannot record {len(rows)} outcomes: {exc}",
                    source=str(self.path),
                    retryable=isinstance(exc, sqlite3.OperationalError),
                ) from exc

    def has_caption(self, ref: ImageRef, signature: CaptionSignature) -> bool:
        """A successful caption of this input with this signature, made from the same content where that is known."""
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT status, etag, version_id FROM outcomes WHERE uri = ? AND signature = ?",
                    (ref.uri, signature.key),
                ).fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot query: {exc}", source=str(self.path), retryable=True) from exc
        if row is None or row[0] != "ok":
            return False
        stored_etag, stored_version = row[1], row[2]
        if ref.etag is not None and stored_etag is not None and ref.etag != stored_etag:
            return False  # the file changed since it was captioned
        return not (ref.version_id is not None and stored_version is not None and ref.version_id != stored_version)

    def outcomes(self) -> Iterator[Outcome]:
        """Every record, oldest first, streamed through a separate read connection (a consistent snapshot)."""
        try:
            reader = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read: {exc}", source=str(self.path)) from exc
        try:
            cursor = reader.execute(
                "SELECT uri, version_id, etag, size, sequencer, explicit, result FROM outcomes "
                "ORDER BY recorded_at, uri"
            )
            for uri, version_id, etag, size, sequencer, explicit, result in cursor:
                ref = ImageRef(uri, version_id, etag, size, sequencer, bool(explicit))
                yield Outcome(ref, caption_result_adapter.validate_json(result))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read: {exc}", source=str(self.path)) from exc
        finally:
            reader.close()

    # ---------------------------------------------------------------- extras

    def count(self, status: str | None = None) -> int:
        with self._lock:
            if status is None:
                (total,) = self._conn.execute("SELECT COUNT(*) FROM outcomes").fetchone()
            else:
                (total,) = self._conn.execute("SELECT COUNT(*) FROM outcomes WHERE status = ?", (status,)).fetchone()
        return int(total)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _migrate(self) -> None:
        (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database schema version {version} is newer than this imgcaption understands ({SCHEMA_VERSION}); "
                "upgrade imgcaption",
                source=str(self.path),
            )
        if version < SCHEMA_VERSION:
            self._conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")


def _row(outcome: Outcome, recorded_at: str) -> tuple[Any, ...]:
    result = outcome.result
    ref = outcome.ref
    return (
        ref.uri,
        CaptionSignature.of(result).key,
        result.status,
        getattr(result, "text", None),
        result.model,
        ref.version_id,
        ref.etag,
        ref.size,
        ref.sequencer,
        int(ref.explicit),
        json.dumps(caption_result_adapter.dump_python(result, mode="json"), ensure_ascii=False),
        recorded_at,
    )
