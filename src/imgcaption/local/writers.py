"""Output writers: each outcome is written as soon as it exists, so a long run can be piped into ``jq`` or ``head``.

``text`` is for people (captions on stdout; failures are reported on stderr by the CLI). ``json``, ``jsonl`` and
``csv`` are for programs and include failures as records with ``status: "failed"``, ``error_type`` and ``message``.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any, Final, Literal, Protocol, TextIO, get_args

from imgcaption.ports import Outcome
from imgcaption.results import caption_result_adapter

OutputFormat = Literal["text", "json", "jsonl", "csv"]
OUTPUT_FORMATS: Final[tuple[str, ...]] = get_args(OutputFormat)

CSV_COLUMNS: Final = (
    "source",
    "status",
    "text",
    "error_type",
    "message",
    "model",
    "revision",
    "precision",
    "num_beams",
    "max_length",
    "max_new_tokens",
    "prompt",
    "width",
    "height",
    "sha256",
    "elapsed_ms",
    "created_at",
)


class OutcomeWriter(Protocol):
    def write(self, outcome: Outcome) -> None: ...

    def close(self) -> None:
        """Finish the document (e.g. the closing ``]`` of a JSON array); does not close the stream."""
        ...


def outcome_record(outcome: Outcome) -> dict[str, Any]:
    """The JSON object for one outcome: the result's own fields (``status`` tells caption from failure)."""
    record: dict[str, Any] = caption_result_adapter.dump_python(outcome.result, mode="json")
    return record


def display_path(uri: str, cwd: str | None = None) -> str:
    """A local path relative to the working directory when it is inside it, else as stored."""
    base = cwd or os.getcwd()
    if os.path.isabs(uri):
        try:
            relative = os.path.relpath(uri, base)
        except ValueError:  # another drive on Windows
            return uri
        if not relative.startswith(os.pardir):
            return relative
    return uri


class TextWriter:
    """``path: caption`` per line, or the bare caption when the run has a single input. Failures are not written."""

    def __init__(self, stream: TextIO, *, bare: bool = False) -> None:
        self.stream = stream
        self.bare = bare

    def write(self, outcome: Outcome) -> None:
        result = outcome.result
        if not result.ok:
            return
        text = getattr(result, "text", "")
        line = text if self.bare else f"{display_path(result.source)}: {text}"
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class JsonLinesWriter:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, outcome: Outcome) -> None:
        self.stream.write(json.dumps(outcome_record(outcome), ensure_ascii=False) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class JsonArrayWriter:
    """A JSON array written one element per line, so it streams and is still one valid document when closed."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._count = 0
        self._closed = False

    def write(self, outcome: Outcome) -> None:
        prefix = "[" if self._count == 0 else ","
        self.stream.write(prefix + json.dumps(outcome_record(outcome), ensure_ascii=False) + "\n")
        self.stream.flush()
        self._count += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stream.write("[]\n" if self._count == 0 else "]\n")
        self.stream.flush()


_GENERATION_COLUMNS: Final = ("num_beams", "max_length", "max_new_tokens", "prompt")
"""The generation options flattened into CSV columns: all of them, as all are part of a caption's identity."""


class CsvWriter:
    """One row per outcome with a fixed header; generation options are flattened into their own columns."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        self._writer.writeheader()
        self.stream.flush()

    def write(self, outcome: Outcome) -> None:
        record = outcome_record(outcome)
        generation = record.pop("generation", {}) or {}
        record.update({key: generation.get(key) for key in _GENERATION_COLUMNS})
        self._writer.writerow({key: "" if record.get(key) is None else record[key] for key in CSV_COLUMNS})
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


def make_writer(output_format: str, stream: TextIO, *, bare_text: bool = False) -> OutcomeWriter:
    """The writer for ``output_format`` (one of :data:`OUTPUT_FORMATS`) on ``stream``."""
    if output_format == "text":
        return TextWriter(stream, bare=bare_text)
    if output_format == "jsonl":
        return JsonLinesWriter(stream)
    if output_format == "json":
        return JsonArrayWriter(stream)
    if output_format == "csv":
        return CsvWriter(stream)
    raise ValueError(f"unknown output format {output_format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
