"""Crash safety: ``imgcaption caption`` killed with SIGKILL inside a batch's transaction, then resumed.

The store commits once per batch, so a kill loses at most the batch in flight, and the resumed run with
``--skip-existing`` captions exactly what is missing: nothing lost, nothing recorded twice.

Nothing here depends on timing. The real CLI runs in a child process whose SQLite connections carry a trace callback
(the standard ``sqlite3`` API, no change to the store): when a batch's ``COMMIT`` is about to run after its rows were
inserted, and :data:`COMMITTED_BEFORE_KILL` batches are already committed, the child reports through a pipe and
waits. The parent reads the table while the child waits there (the committed batches, and none of the doomed one's
inserted rows), kills it, and checks the table again.

Caught (checked on a copy of the code): a store that commits each row on its own (``COMMIT`` after every
``INSERT``): the kill then leaves part of a batch behind.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from imgcaption.results import caption_result_adapter
from imgcaption_cli.main import cli

IMAGES = 24
BATCH = 2
COMMITTED_BEFORE_KILL = 3

# The real CLI. Every SQLite connection it opens reports each statement to ``pause_before_doomed_commit``, which
# stops the process just before the COMMIT of batch COMMITTED_BEFORE_KILL + 1, once that batch's rows are inserted.
PAUSING_CLI = """
import json, os, sqlite3, sys, threading

report_fd = int(os.environ["KILL_TEST_REPORT_FD"])
committed_before_kill = int(os.environ["KILL_TEST_COMMITTED_BEFORE_KILL"])
committed = 0
real_connect = sqlite3.connect


def connect(*args, **kwargs):
    connection = real_connect(*args, **kwargs)
    inserted = 0

    def pause_before_doomed_commit(statement):
        global committed
        nonlocal inserted
        if statement.startswith("BEGIN"):
            inserted = 0
        elif statement.lstrip().startswith("INSERT INTO outcomes"):
            inserted += 1
        elif statement == "COMMIT" and inserted:
            if committed == committed_before_kill:
                os.write(report_fd, json.dumps({"committed": committed, "inserted": inserted}).encode())
                threading.Event().wait()  # until SIGKILL
            committed += 1

    connection.set_trace_callback(pause_before_doomed_commit)
    return connection


sqlite3.connect = connect
from imgcaption_cli.main import cli
cli(sys.argv[1:], prog_name="imgcaption")
"""


def rows(db: Path) -> dict[str, tuple[str, str]]:
    """uri → (status, recorded_at), read through a connection of its own (which sees committed rows only)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        found = connection.execute("SELECT uri, status, recorded_at FROM outcomes").fetchall()
    assert len(found) == len({uri for uri, _, _ in found}), "one record per input"
    return {uri: (status, recorded_at) for uri, status, recorded_at in found}


def run_until_paused_in_a_batch(
    command: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """Start the pausing CLI; return it once it reports that it waits before a COMMIT (what it reported)."""
    read_end, write_end = os.pipe()
    env = {**env, "KILL_TEST_REPORT_FD": str(write_end), "KILL_TEST_COMMITTED_BEFORE_KILL": str(COMMITTED_BEFORE_KILL)}
    child = subprocess.Popen(command, env=env, pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write_end)
    try:
        report = os.read(read_end, 200)  # the child's one write, or b"" once it exits without pausing
    except BaseException:
        child.kill()
        child.communicate()
        raise
    finally:
        os.close(read_end)
    if not report:
        _, stderr = child.communicate()
        pytest.fail(f"the run ended (exit {child.returncode}) before batch {COMMITTED_BEFORE_KILL + 1}: {stderr!r}")
    paused: dict[str, int] = json.loads(report)
    return child, paused


@pytest.mark.slow
def test_a_run_killed_inside_a_batch_keeps_every_committed_batch_and_nothing_of_the_doomed_one(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(IMAGES):
        Image.new("RGB", (32, 24), (index * 10, 100, 200)).save(folder / f"{index:02}.png")
    every_input = {str(path) for path in folder.iterdir()}
    db = tmp_path / "captions.db"
    env = {**os.environ, "IMGCAPTION_MODEL": str(tiny_model_dir), "IMGCAPTION_DB": str(db), "IMGCAPTION_THREADS": "1"}
    command = [sys.executable, "-c", PAUSING_CLI, "caption", str(folder), "--batch-size", str(BATCH), "-q"]

    child, paused = run_until_paused_in_a_batch(command, env)
    try:
        assert paused == {"committed": COMMITTED_BEFORE_KILL, "inserted": BATCH}  # the doomed batch is written
        before_kill = rows(db)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL

    assert len(before_kill) == COMMITTED_BEFORE_KILL * BATCH
    assert set(before_kill) <= every_input
    assert rows(db) == before_kill  # every committed row survived as it was; none of the doomed batch's rows did
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    resumed = CliRunner().invoke(
        cli,
        ["caption", str(folder), "--batch-size", str(BATCH), "--skip-existing", "--format", "jsonl"],
        env={"IMGCAPTION_MODEL": str(tiny_model_dir), "IMGCAPTION_DB": str(db), "IMGCAPTION_THREADS": "1"},
        catch_exceptions=False,
    )
    assert resumed.exit_code == 0, resumed.stderr
    captioned_now = [caption_result_adapter.validate_json(line).source for line in resumed.stdout.splitlines()]
    assert sorted(captioned_now) == sorted(every_input - set(before_kill))  # exactly the rest, each once
    final = rows(db)
    assert set(final) == every_input
    assert {status for status, _ in final.values()} == {"ok"}
    assert {uri: final[uri] for uri in before_kill} == before_kill  # the resumed run left the survivors alone
