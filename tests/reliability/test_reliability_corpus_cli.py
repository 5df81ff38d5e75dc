"""The hostile-input corpus through ``imgcaption caption`` (in process, tiny random model).

Named one by one, every file is an input: exit status 1, exactly one SQLite record per file with the outcome the
corpus promises, and an ``error:`` line on stderr naming each bad file and its error type. Walked as a directory
(``--recursive``) next to a symlink loop, the run terminates, the looped photo is captioned once, every good file
is captioned, anything not captioned is reported as skipped, and sidecars appear only next to their images.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from imgcaption.testing.corpus import CorpusEntry, write_corpus, write_symlink_loop
from imgcaption_cli.main import cli

Run = Callable[..., Result]


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, list[CorpusEntry]]:
    root = tmp_path / "corpus"
    return root, write_corpus(root)


@pytest.fixture
def imgcaption(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    env = {"IMGCAPTION_MODEL": str(tiny_model_dir), "IMGCAPTION_DB": str(tmp_path / "captions.db")}

    def run(*args: str | Path) -> Result:
        return CliRunner().invoke(cli, [str(arg) for arg in args], env={**env, "IMGCAPTION_THREADS": "1"})

    return run


def records(db: Path) -> dict[str, str]:
    """uri → "ok" or the error type, asserting one record per input."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT uri, status, result FROM outcomes").fetchall()
    assert len(rows) == len({uri for uri, _, _ in rows}), "more than one record for an input"
    return {uri: "ok" if status == "ok" else json.loads(result)["error_type"] for uri, status, result in rows}


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_every_named_file_is_one_record_with_its_outcome_and_every_bad_one_is_named_on_stderr(
    imgcaption: Run, corpus: tuple[Path, list[CorpusEntry]], tmp_path: Path
) -> None:
    root, entries = corpus
    named = [entry for entry in entries if not (root / entry.name).is_dir()]  # a directory argument is walked

    result = imgcaption("caption", *(root / entry.name for entry in named), "--format", "jsonl")

    assert result.exit_code == 1, result.stderr
    assert records(tmp_path / "captions.db") == {str(root / entry.name): entry.expect for entry in named}
    assert len(result.stdout.splitlines()) == len(named)
    bad = [entry for entry in named if entry.expect != "ok"]
    errors = error_lines(result)
    assert len(errors) == len(bad)
    for entry in bad:
        assert any(f"corpus/{entry.name}: {entry.expect}: " in line for line in errors), entry.name


def test_a_recursive_walk_past_a_symlink_loop_terminates_and_accounts_for_every_file(
    imgcaption: Run, corpus: tuple[Path, list[CorpusEntry]], tmp_path: Path
) -> None:
    root, entries = corpus
    looped = write_symlink_loop(root / "looped")  # looped/nested/loop -> looped
    before = {path for path in tmp_path.rglob("*") if not path.is_symlink()}

    result = imgcaption("caption", "--recursive", "--sidecar", "--verbose", root)

    assert result.exit_code == 1, result.stderr
    outcomes = records(tmp_path / "captions.db")
    photo = str(looped / "nested" / "photo.png")
    assert outcomes.pop(photo) == "ok"
    assert not any("/loop/" in uri for uri in outcomes), "the walk followed the symlink loop"
    assert "skipped corpus/looped/nested/loop: directory symlink (not followed)" in result.stderr
    expected = {str(root / entry.name): entry.expect for entry in entries}
    for uri, outcome in outcomes.items():
        assert outcome == expected[uri], uri
    captioned = {uri for uri, outcome in outcomes.items() if outcome == "ok"}
    assert captioned == {uri for uri, outcome in expected.items() if outcome == "ok"}, "a good file was dropped"
    for uri in set(expected) - set(outcomes) - {str(root / "folder.jpg")}:  # the empty folder is simply walked
        assert f"skipped {os.path.relpath(uri, tmp_path)}: " in result.stderr, uri

    new_files = {path for path in tmp_path.rglob("*") if not path.is_symlink()} - before
    sidecars = {path for path in new_files if path.suffix == ".txt"}
    assert sidecars, "no sidecar was written"
    for sidecar in sidecars:
        assert sidecar.parent in (root, looped / "nested")
        assert any(Path(uri).parent == sidecar.parent and Path(uri).stem == sidecar.stem for uri in [*captioned, photo])
