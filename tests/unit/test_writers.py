"""Output formats: each parses with a standard reader, and the machine formats carry failures as records."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from imgcaption.generation import GenerationOptions
from imgcaption.local.writers import CSV_COLUMNS, OUTPUT_FORMATS, display_path, make_writer
from imgcaption.ports import ImageRef, Outcome
from imgcaption.results import Caption, CaptionFailure, caption_result_adapter

OK = Caption(text='a "quoted", comma\ncaption', source="/photos/a.jpg", model="m", width=4, height=3, elapsed_ms=2)
BAD = CaptionFailure(source="/photos/b.jpg", model="m", error_type="ImageDecodeError", message="truncated")
OUTCOMES = [Outcome(ImageRef(OK.source), OK), Outcome(ImageRef(BAD.source), BAD)]


def written(output_format: str, outcomes: list[Outcome] = OUTCOMES, **options: bool) -> str:
    stream = io.StringIO()
    writer = make_writer(output_format, stream, **options)
    for outcome in outcomes:
        writer.write(outcome)
    writer.close()
    return stream.getvalue()


def test_jsonl_is_one_result_per_line_and_round_trips() -> None:
    lines = written("jsonl").splitlines()
    assert [caption_result_adapter.validate_json(line) for line in lines] == [OK, BAD]


def test_json_is_one_array_including_error_objects() -> None:
    records = json.loads(written("json"))
    assert [record["status"] for record in records] == ["ok", "failed"]
    assert records[1] | {"error_type": "ImageDecodeError", "message": "truncated"} == records[1]
    assert [caption_result_adapter.validate_python(record) for record in records] == [OK, BAD]


def test_json_with_nothing_written_is_still_a_valid_empty_array() -> None:
    assert json.loads(written("json", [])) == []


def test_csv_has_a_fixed_header_and_survives_quotes_commas_and_newlines() -> None:
    rows = list(csv.DictReader(io.StringIO(written("csv"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0]["text"] == OK.text
    assert (rows[0]["status"], rows[0]["num_beams"], rows[0]["max_length"]) == ("ok", "4", "16")
    assert (rows[1]["status"], rows[1]["error_type"], rows[1]["text"]) == ("failed", "ImageDecodeError", "")


def test_every_format_carries_the_prompt_which_is_part_of_a_captions_identity() -> None:
    """Two captions of one image that differ only by their prompt must stay two rows a reader can tell apart."""
    prompted = [
        Outcome(ImageRef(OK.source), OK.model_copy(update={"generation": GenerationOptions(prompt=prompt)}))
        for prompt in ("a photography of", "a picture of")
    ]
    rows = list(csv.DictReader(io.StringIO(written("csv", prompted))))
    assert [row["prompt"] for row in rows] == ["a photography of", "a picture of"]
    assert [record["generation"]["prompt"] for record in json.loads(written("json", prompted))] == [
        "a photography of",
        "a picture of",
    ]
    lines = written("jsonl", prompted).splitlines()
    assert [caption_result_adapter.validate_json(line) for line in lines] == [o.result for o in prompted]
    unprompted = next(csv.DictReader(io.StringIO(written("csv", OUTCOMES[:1]))))
    assert unprompted["prompt"] == ""  # none given: an empty cell, as for the other unset options


def test_csv_has_a_column_for_every_generation_option() -> None:
    """A new generation option changes a caption's identity, so it must not vanish from CSV exports."""
    assert set(GenerationOptions.model_fields) <= set(CSV_COLUMNS)


def test_text_is_path_and_caption_and_leaves_failures_to_stderr() -> None:
    assert written("text") == f"/photos/a.jpg: {OK.text}\n"


def test_text_for_a_single_input_is_just_the_caption() -> None:
    assert written("text", OUTCOMES[:1], bare_text=True) == OK.text + "\n"


def test_every_format_has_a_writer_and_a_run_with_no_outcomes_is_an_empty_document() -> None:
    """Caught (checked on a copy of the code): a CSV writer that writes its header only with the first row."""
    empty = {output_format: written(output_format, []) for output_format in OUTPUT_FORMATS}
    assert sorted(empty) == ["csv", "json", "jsonl", "text"]  # a new format gets its own line below
    assert empty["text"] == ""
    assert empty["jsonl"] == ""
    assert json.loads(empty["json"]) == []
    reader = csv.DictReader(io.StringIO(empty["csv"]))
    assert (tuple(reader.fieldnames or ()), list(reader)) == (CSV_COLUMNS, [])
    with pytest.raises(ValueError, match="unknown output format"):
        make_writer("yaml", io.StringIO())


def test_paths_are_shown_relative_to_the_working_directory_when_inside_it(tmp_path: Path) -> None:
    assert display_path(str(tmp_path / "a" / "b.jpg"), cwd=str(tmp_path)) == "a/b.jpg"
    assert display_path("/elsewhere/b.jpg", cwd=str(tmp_path)) == "/elsewhere/b.jpg"
    assert display_path("s3://bucket/key.jpg", cwd=str(tmp_path)) == "s3://bucket/key.jpg"
