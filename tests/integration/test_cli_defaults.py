"""Defaults that fit the platform: where the store lives, no stray .env, and runs that leave nothing behind."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from imgcaption.settings import Settings, default_db_path
from imgcaption_cli.main import cli


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("IMGCAPTION_DB")
    return home


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), "orange").save(path)
    return path


def test_the_store_defaults_to_the_user_data_directory(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_db_path() == home / ".local" / "share" / "imgcaption" / "captions.db"
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    assert Settings().db == home / "data" / "imgcaption" / "captions.db"


def test_a_store_from_an_earlier_version_keeps_being_used(home: Path) -> None:
    legacy = home / ".imgcaption" / "captions.db"
    legacy.parent.mkdir()
    sqlite3.connect(legacy).close()
    assert default_db_path() == legacy


def test_a_dotenv_file_in_the_working_directory_is_read_only_when_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgcaption_cli.options import load_settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("IMGCAPTION_NUM_BEAMS=7\n")
    assert Settings().num_beams == 4
    assert load_settings().num_beams == 4
    monkeypatch.setenv("IMGCAPTION_ENV_FILE", str(tmp_path / ".env"))
    assert load_settings().num_beams == 7


def test_no_store_captions_to_stdout_and_writes_no_database(
    home: Path, photo: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    env = {"IMGCAPTION_MODEL": str(tiny_model_dir), "IMGCAPTION_THREADS": "1"}
    result = CliRunner().invoke(cli, ["caption", str(photo), "--no-store", "--format", "jsonl"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == "ok"
    assert "Store: none" in result.stderr
    assert not list(home.rglob("*.db")) and not list(tmp_path.rglob("captions.db"))


def test_no_store_refuses_options_that_need_a_store(home: Path, photo: Path) -> None:
    result = CliRunner().invoke(cli, ["caption", str(photo), "--no-store", "--skip-existing"])
    assert result.exit_code == 2
    assert "--no-store" in result.output
