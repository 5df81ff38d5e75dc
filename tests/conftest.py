"""Shared fixtures. Nothing here touches the network: models are built locally from vendored configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# skip_guard fails the run on a skip it does not allow, when CI is set (or with --fail-on-unexpected-skips);
# pytester runs pytest on made-up test files, to check that guard (tests/unit/test_ci_guards.py).
pytest_plugins = ("skip_guard", "pytester")

# No test may reach a model hub; transformers and huggingface_hub honour these.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

settings.register_profile("ci", derandomize=True, print_blob=True)


def pytest_configure(config: pytest.Config) -> None:
    """In CI every hypothesis test draws the same examples on every run (derandomize: seeded from the test itself),
    and a failure prints the ``@reproduce_failure`` blob that replays it anywhere.

    ``HYPOTHESIS_PROFILE`` chooses explicitly, ``CI=1`` alone selects ``ci``; ``--hypothesis-profile`` still wins
    (hypothesis applies it after this hook), and a test's own ``@settings`` override the profile for what they name.
    """
    from skip_guard import in_ci  # imported by pytest_plugins above, after its assertion rewriting was set up

    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if in_ci() else "default"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight, shrunk vit-gpt2 directory, built once per test session."""
    from imgcaption.testing import save_random_model

    return save_random_model(tmp_path_factory.mktemp("models") / "tiny-vit-gpt2", "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_captioner(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    """One loaded tiny captioner shared by tests that only read from it."""
    from imgcaption import Captioner

    return Captioner.from_pretrained(str(tiny_model_dir), threads=1)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's ~/.imgcaption or IMGCAPTION_* variables by accident."""
    for name in list(os.environ):
        if name.startswith("IMGCAPTION_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("IMGCAPTION_DB", str(tmp_path / "captions.db"))


@pytest.fixture
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and a region for moto, so no test can reach a real AWS account by accident."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
