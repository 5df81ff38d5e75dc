"""The ``imgcaption`` command end to end on a tiny random-weight model (CliRunner, in process).

Captions from random weights are gibberish; these tests check that every input is accounted for, where each kind
of output goes, the exit status, and that outputs parse.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from imgcaption.results import caption_result_adapter
from imgcaption_cli.main import COMMANDS, LazyCommand, LazyGroup, cli

GOOD = ("a.jpg", "b.png", "c.jpg", "d.png")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """photos/{a.jpg, b.png, c.jpg, d.png} that decode, broken.jpg that does not, and notes.txt."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, name in enumerate(GOOD):
        Image.new("RGB", (40 + index, 30), ("red", "green", "blue", "white")[index]).save(folder / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this JPEG stops here")
    (folder / "notes.txt").write_text("shopping list")
    return folder


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store" / "captions.db"


@pytest.fixture
def imgcaption(tiny_model_dir: Path, db: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run ``imgcaption ARGS`` against the tiny model and the test's database."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)

    def run(*args: str | Path, model: str | Path = tiny_model_dir) -> Result:
        env = {"IMGCAPTION_MODEL": str(model), "IMGCAPTION_DB": str(db), "IMGCAPTION_THREADS": "1"}
        return CliRunner().invoke(cli, [str(arg) for arg in args], env=env, catch_exceptions=False)

    return run


def records(db: Path) -> dict[str, str]:
    """uri → status of every record in the store."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT uri, status FROM outcomes").fetchall()
    assert len(rows) == len({uri for uri, _ in rows}), "one record per input"
    return {Path(uri).name: status for uri, status in rows}


def jsonl(text: str) -> dict[str, str]:
    results = [caption_result_adapter.validate_json(line) for line in text.splitlines()]
    return {Path(result.source).name: result.status for result in results}


# ------------------------------------------------------------------- caption


def test_mixed_good_and_bad_files_exit_1_with_every_input_recorded_once(imgcaption, photos: Path, db: Path) -> None:
    result = imgcaption("caption", photos, photos / "notes.txt", "--format", "jsonl")
    assert result.exit_code == 1
    expected = {**dict.fromkeys(GOOD, "ok"), "broken.jpg": "failed", "notes.txt": "failed"}
    assert jsonl(result.stdout) == expected  # failures are records in JSON formats
    assert records(db) == expected
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert any("photos/broken.jpg: ImageDecodeError" in line for line in errors)
    assert any("photos/notes.txt: UnsupportedImageError" in line for line in errors)
    assert "4 captioned, 2 failed" in result.stderr


def test_non_images_found_in_a_directory_are_skipped_not_failed(imgcaption, photos: Path, db: Path) -> None:
    (photos / "broken.jpg").unlink()
    result = imgcaption("caption", photos)
    assert result.exit_code == 0
    assert "notes.txt" not in records(db)
    assert "1 skipped (not images" in result.stderr
    assert sorted(line.split(":")[0] for line in result.stdout.splitlines()) == [f"photos/{n}" for n in sorted(GOOD)]


def test_one_named_file_prints_just_its_caption(imgcaption, photos: Path) -> None:
    result = imgcaption("caption", photos / "a.jpg")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 1
    assert not result.stdout.startswith("photos/")


def test_skip_existing_after_a_partial_run_captions_exactly_the_rest(imgcaption, photos: Path, db: Path) -> None:
    assert imgcaption("caption", photos / "a.jpg", photos / "b.png").exit_code == 0
    first = records(db)
    with sqlite3.connect(db) as connection:
        before = dict(connection.execute("SELECT uri, recorded_at FROM outcomes").fetchall())

    result = imgcaption("caption", photos, "--skip-existing", "--format", "jsonl")
    assert jsonl(result.stdout) == {"c.jpg": "ok", "d.png": "ok", "broken.jpg": "failed"}
    assert "2 already captioned" in result.stderr
    assert records(db) == {**first, "c.jpg": "ok", "d.png": "ok", "broken.jpg": "failed"}
    with sqlite3.connect(db) as connection:
        after = dict(connection.execute("SELECT uri, recorded_at FROM outcomes").fetchall())
    assert {uri: after[uri] for uri in before} == before  # the first two were not touched

    again = imgcaption("caption", photos, "--skip-existing", "--format", "jsonl")
    assert jsonl(again.stdout) == {"broken.jpg": "failed"}  # failures are retried, captions are not


def test_different_options_are_a_different_caption_not_a_skip(imgcaption, photos: Path, db: Path) -> None:
    imgcaption("caption", photos / "a.jpg")
    result = imgcaption("caption", photos / "a.jpg", "--skip-existing", "--beams", "1", "--format", "jsonl")
    assert jsonl(result.stdout) == {"a.jpg": "ok"}
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM outcomes").fetchone() == (2,)


def test_json_and_csv_outputs_parse_and_include_failures(imgcaption, photos: Path, tmp_path: Path) -> None:
    as_json = imgcaption("caption", photos, "--format", "json")
    parsed = json.loads(as_json.stdout)
    assert sorted(record["status"] for record in parsed) == ["failed", "ok", "ok", "ok", "ok"]
    failure = next(record for record in parsed if record["status"] == "failed")
    assert failure["error_type"] == "ImageDecodeError" and failure["message"]

    out = tmp_path / "out" / "captions.csv"
    out.parent.mkdir()
    as_csv = imgcaption("caption", photos, "--format", "csv", "--output", out)
    assert as_csv.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert sorted(Path(row["source"]).name for row in rows) == sorted([*GOOD, "broken.jpg"])


def test_sidecars_are_written_but_never_overwritten_by_default(imgcaption, photos: Path) -> None:
    (photos / "a.txt").write_text("my own notes about a")
    result = imgcaption("caption", photos, "--sidecar")
    assert (photos / "a.txt").read_text() == "my own notes about a"
    assert all((photos / name).with_suffix(".txt").is_file() for name in GOOD)
    assert not (photos / "broken.txt").exists()
    assert "sidecars: 3 written, 1 existing kept" in result.stderr
    assert result.exit_code == 1  # for broken.jpg; a kept sidecar is not a failure

    imgcaption("caption", photos / "a.jpg", "--sidecar", "--overwrite")
    assert (photos / "a.txt").read_text() != "my own notes about a"


# ------------------------------------------------------------------- usage errors: exit 2, nothing recorded


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Missing argument 'PATHS...'"),
        (("x.jpg", "--format", "yaml"), "'yaml' is not one of"),
        (("x.jpg", "--beams", "0"), "0 is not in the range"),
        (("x.jpg", "--precision", "fp8"), "'fp8' is not one of"),
        (("x.jpg", "--overwrite"), "--overwrite only applies to --sidecar"),
    ],
)
def test_usage_errors_exit_2(imgcaption, args: tuple[str, ...], message: str) -> None:
    result = imgcaption("caption", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_model_that_cannot_be_loaded_is_exit_2_and_caption_never_falls_back(
    imgcaption, photos: Path, db: Path, tmp_path: Path
) -> None:
    result = imgcaption("caption", photos, model=tmp_path / "no-such-model")
    assert result.exit_code == 2
    assert "no model directory at" in result.stderr
    assert result.stdout == ""
    assert records(db) == {}


def test_nothing_to_caption_exits_0_without_loading_a_model(imgcaption, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = imgcaption("caption", empty, model=tmp_path / "no-such-model")  # would be exit 2 if loaded
    assert result.exit_code == 0
    assert "no images found" in result.stderr


def test_an_unwritable_output_is_a_usage_error(imgcaption, photos: Path, tmp_path: Path) -> None:
    result = imgcaption("caption", photos / "a.jpg", "--output", tmp_path / "missing" / "out.jsonl")
    assert result.exit_code == 2
    assert "cannot write" in result.stderr


# ------------------------------------------------------------------- export


class Gallery(HTMLParser):
    def __init__(self, document: str) -> None:
        super().__init__()
        self.figures: list[str | None] = []
        self.images: list[str | None] = []
        self.feed(document)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "figure":
            self.figures.append(dict(attrs).get("class"))
        if tag == "img":
            self.images.append(dict(attrs).get("src"))


def test_export_dumps_the_store_in_every_format(imgcaption, photos: Path, tmp_path: Path) -> None:
    imgcaption("caption", photos)
    as_jsonl = imgcaption("export")
    assert as_jsonl.exit_code == 0
    assert jsonl(as_jsonl.stdout) == {**dict.fromkeys(GOOD, "ok"), "broken.jpg": "failed"}
    assert len(json.loads(imgcaption("export", "--format", "json").stdout)) == 5
    assert len(list(csv.DictReader(io.StringIO(imgcaption("export", "--format", "csv").stdout)))) == 5
    assert jsonl(imgcaption("export", "--status", "failed").stdout) == {"broken.jpg": "failed"}

    gallery = tmp_path / "gallery.html"
    result = imgcaption("export", "--format", "html", "--output", gallery)
    assert result.exit_code == 0
    page = Gallery(gallery.read_text(encoding="utf-8"))
    assert page.figures == ["failed", "ok", "ok", "ok", "ok"]
    assert len(page.images) == 4
    assert all(src and src.startswith("data:image/jpeg;base64,") for src in page.images)


def test_export_without_a_database_says_so(imgcaption) -> None:
    result = imgcaption("export")
    assert result.exit_code == 2
    assert "no caption database" in result.stderr


# ------------------------------------------------------------------- demo


def test_demo_offline_falls_back_to_random_weights_and_says_so_loudly(
    imgcaption, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("imgcaption_cli.demo_command._scene_plan", lambda settings, terminal: None)
    result = imgcaption("demo", "--random-model-size", "tiny", model=tmp_path / "no-real-model")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("THESE CAPTIONS ARE MEANINGLESS") == 2  # before and after the run
    assert len(records(db)) == 5
    document = (tmp_path / "imgcaption-demo.html").read_text(encoding="utf-8")
    assert "THESE CAPTIONS ARE MEANINGLESS" in document
    assert Gallery(document).figures == ["ok"] * 5
    assert "imgcaption/random-vit-gpt2-tiny" in document  # a stable model id, not a temporary path


def test_demo_offline_prefers_the_trained_scene_captioner_which_gets_the_scenes_right(
    imgcaption, db: Path, tmp_path: Path
) -> None:
    scene_model = pytest.importorskip("imgcaption.testing.scene_model")
    try:
        scene_model.scene_captioner_path()
    except FileNotFoundError:
        pytest.skip("the trained scene captioner is not in this checkout")

    result = imgcaption("demo", "--output", tmp_path / "g.html", model=tmp_path / "no-real-model")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("trained on synthetic scenes") == 2
    seeds = [1_000_000_000 + index for index in range(8)]  # held-out scenes, never seen in training
    assert sorted(records(db)) == [f"scene-{seed}.png" for seed in seeds]
    right = result.stderr.count("✓ the true caption")
    assert right >= len([seed for seed in seeds if seed not in scene_model.SCENE_CAPTIONER_MISSES])
    assert right + result.stderr.count("✗ expected: ") == 8
    assert (tmp_path / "home" / ".local" / "share" / "imgcaption" / "demo" / "scenes").is_dir()


def test_demo_uses_the_configured_model_when_it_loads(imgcaption, db: Path, tmp_path: Path) -> None:
    result = imgcaption("demo")  # the tiny model stands in for the real one here
    assert result.exit_code == 0
    assert "MEANINGLESS" not in result.stderr
    bundled = Path(__file__).resolve().parents[2] / "examples"
    assert sorted(records(db)) == sorted(path.name for path in bundled.glob("*.jpg"))
    assert Gallery((tmp_path / "imgcaption-demo.html").read_text(encoding="utf-8")).figures == ["ok"] * 5


# ------------------------------------------------------------------- the command group


def test_help_lists_every_command_without_importing_torch_or_transformers(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import contextlib, io, sys
        from imgcaption_cli.main import cli
        for args in (["--help"], ["caption", "--help"], ["export", "--help"], ["demo", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
                cli.main(args, prog_name="imgcaption")
            print(out.getvalue())
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "transformers", "boto3", "rich"})
        print("HEAVY:", heavy)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert "HEAVY: []" in done.stdout
    for name in COMMANDS:
        assert f"  {name} " in done.stdout
    assert "--skip-existing" in done.stdout


def test_a_command_whose_module_or_extra_is_missing_explains_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "needs_extra_mod.py").write_text("import not_installed_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    @click.group(
        cls=LazyGroup,
        lazy_commands={
            "later": LazyCommand("imgcaption_cli.not_written_yet:later", "Arrives later."),
            "cloudy": LazyCommand("needs_extra_mod:cloudy", "Needs an extra.", extra="aws"),
        },
    )
    def group() -> None:
        """Test group."""

    runner = CliRunner()
    listing = runner.invoke(group, ["--help"])
    assert "later   Arrives later." in listing.stdout

    later = runner.invoke(group, ["later", "--anything"])
    assert later.exit_code == 2
    assert "not part of this installation" in later.stderr

    cloudy = runner.invoke(group, ["cloudy"])
    assert cloudy.exit_code == 2
    assert "pip install 'imgcaption-toolkit[aws]'" in cloudy.stderr
    assert "not_installed_dependency_xyz" in cloudy.stderr


def test_ctrl_c_stops_after_the_batch_in_flight_and_says_how_to_finish(
    imgcaption, photos: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgcaption.captioner import Captioner

    original = Captioner.caption_decoded

    def interrupted_during_first_batch(self: Captioner, *args: object, **kwargs: object) -> object:
        if not getattr(self, "_interrupted", False):
            self._interrupted = True  # type: ignore[attr-defined]
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Captioner, "caption_decoded", interrupted_during_first_batch)
    # whatever SIGINT did before (Python's default, or ignored when the tests run as a background job)
    handler_before = signal.getsignal(signal.SIGINT)
    result = imgcaption("caption", photos, "--batch-size", "2", "--format", "jsonl")
    assert result.exit_code == 130
    assert len(jsonl(result.stdout)) == 2  # the batch in flight was finished and recorded
    assert len(records(db)) == 2
    assert "stopping after the current batch" in result.stderr
    assert "3 images not captioned; run the same command with --skip-existing" in result.stderr
    assert signal.getsignal(signal.SIGINT) is handler_before  # handler restored


def test_on_a_terminal_the_progress_bar_goes_to_stderr_and_results_stay_clean(
    imgcaption, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functools

    import imgcaption_cli.running

    terminal_console = functools.partial(imgcaption_cli.running.Console, force_terminal=True, width=100)
    monkeypatch.setattr(imgcaption_cli.running, "Console", terminal_console)
    result = imgcaption("caption", photos, "--format", "jsonl")
    assert "5/5" in result.stderr  # the progress bar, with its total
    assert len(jsonl(result.stdout)) == 5  # stdout (not a terminal here) holds only the results


def test_piped_runs_show_no_progress_bar(imgcaption, photos: Path) -> None:
    result = imgcaption("caption", photos, "--format", "jsonl")
    assert "5/5" not in result.stderr
    assert "\x1b[" not in result.stderr  # no colour codes in logs either
