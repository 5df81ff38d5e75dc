"""Synthesize the CDK app once per session, offline: no Docker, no AWS account, no network.

Two apps are synthesized: ``default`` (cdk.json as committed, through the same ``build_app`` as ``cdk synth``, into
CDK_OUTDIR as the ``cdk`` CLI would set it) and ``custom`` (every optional switch flipped), so each setting is seen
to reach the template.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Both must be in the environment before aws_cdk is imported: the jsii kernel (a node process) copies it at start.
# Node 20 makes jsii print an end-of-life banner on every start; it says nothing about our code.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# A throw-away assembly directory, so the tests never write cdk.out (or staged assets) into the repository.
CDK_OUTDIR = Path(tempfile.mkdtemp(prefix="imgcaption-cdk.out-"))
os.environ["CDK_OUTDIR"] = str(CDK_OUTDIR)
atexit.register(shutil.rmtree, CDK_OUTDIR, ignore_errors=True)

# Without the CDK extra this whole directory is skipped; in CI (CI=1) tests/skip_guard.py turns that skip into a
# failing run, so a missing CDK can never pass there.
pytest.importorskip("aws_cdk", reason="the CDK extra is not installed (pip install -r deploy/cdk/requirements-cdk.txt)")

from cdk_synth import CUSTOM_SETTINGS, Synth, synth  # noqa: E402


@pytest.fixture(scope="session")
def default() -> Synth:
    """The app exactly as ``cdk synth`` builds it from the committed cdk.json, into CDK_OUTDIR."""
    return synth(CDK_OUTDIR)


@pytest.fixture(scope="session")
def custom(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The app with CUSTOM_SETTINGS as the ``imgcaption`` context, into an explicit output directory."""
    return synth(CDK_OUTDIR, {"imgcaption": CUSTOM_SETTINGS}, outdir=tmp_path_factory.mktemp("cdk.out.custom"))
