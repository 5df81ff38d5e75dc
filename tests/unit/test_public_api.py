"""What a notebook user sees of ``imgcaption``: the names for batch work, a cheap import, errors with their causes."""

from __future__ import annotations

import io
import subprocess
import sys
import traceback
from importlib import metadata
from pathlib import Path

import pytest
from PIL import Image

import imgcaption
from imgcaption import Captioner, errors
from imgcaption.distribution import DISTRIBUTION

BATCH_WORK = ["Pipeline", "ImageSource", "CaptionStore", "ImageRef", "SQLiteStore", "LocalFileSource", "ResultList"]


def test_the_names_for_batch_work_come_from_the_top_level_package_and_dir_lists_them() -> None:
    from imgcaption.local.sqlite_store import SQLiteStore
    from imgcaption.pipeline import Pipeline

    assert imgcaption.Pipeline is Pipeline
    assert imgcaption.SQLiteStore is SQLiteStore
    for name in BATCH_WORK:
        assert name in dir(imgcaption), name
        assert name in imgcaption.__all__, name
        assert getattr(imgcaption, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Pipline'"):
        _ = imgcaption.Pipline  # type: ignore[attr-defined]


def test_importing_imgcaption_loads_no_image_model_or_database_library() -> None:
    probe = "import sys, imgcaption; print(sorted({'PIL', 'numpy', 'torch', 'sqlite3'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_version_is_the_installed_distribution_s() -> None:
    assert imgcaption.__version__ == metadata.version(DISTRIBUTION)


def test_caption_raises_the_original_decode_error_with_its_cause(tiny_captioner: Captioner, tmp_path: Path) -> None:
    """A failure record rebuilt into an exception would lose both the traceback and ``__cause__``."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, format="JPEG")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(buffer.getvalue()[:200])
    with pytest.raises(errors.ImageDecodeError) as raised:
        tiny_captioner.caption(truncated)
    assert raised.value.source == str(truncated)
    assert raised.value.__cause__ is not None
    frames = [frame.name for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert "load_image" in frames or "decode_bytes" in frames, frames


def test_caption_raises_a_captioning_error_caused_by_the_inference_failure(
    tiny_captioner: Captioner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(pixel_values: object, options: object) -> object:
        raise RuntimeError("the model broke")

    monkeypatch.setattr(tiny_captioner, "_generate_ids", broken)
    with pytest.raises(errors.CaptioningError, match="the model broke") as raised:
        tiny_captioner.caption(Image.new("RGB", (32, 32)), source="photo.png")
    assert raised.value.source == "photo.png"
    assert isinstance(raised.value.__cause__, RuntimeError)
