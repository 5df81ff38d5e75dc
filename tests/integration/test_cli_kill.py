"""Crash safety: ``imgcaption caption`` killed with SIGKILL mid-run, then resumed with ``--skip-existing``.

The store commits once per batch, so the kill loses at most the batch in flight, and the resumed run captions exactly
what is missing: nothing lost, nothing recorded twice.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from imgcaption.results import caption_result_adapter
from imgcaption_cli.main import cli

IMAGES = 24
BATCH = 2

# The real CLI, with inference slowed down so that the kill surely lands mid-run.
SLOW_CLI = """
import sys, time
from imgcaption.captioner import Captioner
original = Captioner.caption_decoded
def slow(self, *args, **kwargs):
    time.sleep(0.25)
    return original(self, *args, **kwargs)
Captioner.caption_decoded = slow
from imgcaption_cli.main import cli
cli(sys.argv[1:], prog_name="imgcaption")
"""


def rows(db: Path) -> dict[str, tuple[str, str]]:
    """uri → (status, recorded_at); empty while the database is not created yet."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            found = connection.execute("SELECT uri, status, recorded_at FROM outcomes").fetchall()
    except sqlite3.OperationalError:
        return {}
    assert len(found) == len({uri for uri, _, _ in found}), "one record per input"
    return {uri: (status, recorded_at) for uri, status, recorded_at in found}


@pytest.mark.slow
def test_a_killed_run_resumed_with_skip_existing_loses_nothing_and_duplicates_nothing(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(IMAGES):
        Image.new("RGB", (32, 24), (index * 10, 100, 200)).save(folder / f"{index:02}.png")
    db = tmp_path / "captions.db"
    env = {
        **os.environ,
        "IMGCAPTION_MODEL": str(tiny_model_dir),
        "IMGCAPTION_DB": str(db),
        "IMGCAPTION_THREADS": "1",
    }

    command = [sys.executable, "-c", SLOW_CLI, "caption", str(folder), "--batch-size", str(BATCH), "-q"]
    run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(rows(db)) < 2 * BATCH:
            assert run.poll() is None, f"the run ended before it could be killed: {run.stderr.read()!r}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the run recorded nothing within two minutes"
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)
    finally:
        run.kill()
        run.wait()
        assert run.stderr is not None
        run.stderr.close()
    assert run.returncode == -signal.SIGKILL

    survived = rows(db)
    assert 0 < len(survived) < IMAGES, "killed mid-run"
    assert len(survived) % BATCH == 0, "whole batches are committed, never part of one"
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    resumed = CliRunner().invoke(
        cli,
        ["caption", str(folder), "--batch-size", str(BATCH), "--skip-existing", "--format", "jsonl"],
        env={"IMGCAPTION_MODEL": str(tiny_model_dir), "IMGCAPTION_DB": str(db), "IMGCAPTION_THREADS": "1"},
        catch_exceptions=False,
    )
    assert resumed.exit_code == 0, resumed.stderr
    captioned_now = {caption_result_adapter.validate_json(line).source for line in resumed.stdout.splitlines()}
    every_input = {str(path) for path in folder.iterdir()}
    assert captioned_now == every_input - set(survived)  # exactly the rest
    final = rows(db)
    assert set(final) == every_input
    assert {status for status, _ in final.values()} == {"ok"}
    assert {uri: final[uri] for uri in survived} == survived  # what survived the kill was kept as it was
