"""The hostile-input corpus through the library: every file ends as exactly one typed outcome that names it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imgcaption import Captioner, CaptionFailure
from imgcaption.testing.corpus import CorpusEntry, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[CorpusEntry]]:
    root = tmp_path_factory.mktemp("corpus")
    return root, write_corpus(root)


def test_the_corpus_is_big_and_mixed(corpus: tuple[Path, list[CorpusEntry]]) -> None:
    _, entries = corpus
    assert len(entries) >= 30
    assert {entry.expect for entry in entries} >= {
        "ok",
        "ImageDecodeError",
        "ImageTooLargeError",
        "UnsupportedImageError",
    }


def test_every_corpus_file_gets_its_expected_outcome_through_the_library(
    tiny_captioner: Captioner, corpus: tuple[Path, list[CorpusEntry]]
) -> None:
    root, entries = corpus
    paths = [root / entry.name for entry in entries]
    results = tiny_captioner.caption_many(paths, batch_size=8)
    assert len(results) == len(entries)
    for entry, path, result in zip(entries, paths, results, strict=True):
        assert result.source == str(path)
        got = result.error_type if isinstance(result, CaptionFailure) else "ok"
        assert got == entry.expect, f"{entry.name} ({entry.why}): {result}"


_DECODE_UNDER_A_MEMORY_LIMIT = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1536 * 1024 * 1024, 1536 * 1024 * 1024))
from imgcaption.errors import ImgCaptionError
from imgcaption.images import load_image
outcomes = {}
for path in sys.argv[1:]:
    try:
        load_image(path)
        outcomes[path] = "ok"
    except ImgCaptionError as error:
        outcomes[path] = type(error).__name__
print(json.dumps(outcomes))
"""


def test_decoding_the_whole_corpus_fits_in_bounded_memory(corpus: tuple[Path, list[CorpusEntry]]) -> None:
    """Bombs are refused before they allocate: the loader runs the corpus under a 1.5 GB address-space limit."""
    root, entries = corpus
    paths = [str(root / entry.name) for entry in entries]
    completed = subprocess.run(
        [sys.executable, "-c", _DECODE_UNDER_A_MEMORY_LIMIT, *paths],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    outcomes = json.loads(completed.stdout)
    assert outcomes == {str(root / entry.name): entry.expect for entry in entries}
