"""``backfill --skip-existing`` asks the table for the signature the deployed function's captioner writes.

The function builds ``Captioner.from_pretrained(settings=AwsSettings())`` from its environment; backfill, on another
machine, works the same signature out from the model's ``config.json`` and provenance file without its weights
(:func:`imgcaption.captioner.caption_signature`): model id, revision, precision, and the family's options with its
prompt. Any difference would make ``--skip-existing`` queue everything again, or skip what was never captioned.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from aws_support import backfill_account
from imgcaption import Captioner
from imgcaption.backends.base import PROVENANCE_FILE
from imgcaption.captioner import caption_signature
from imgcaption.ports import Outcome
from imgcaption.testing.family_models import save_random_blip, save_random_florence2
from imgcaption_aws.events import S3ObjectRef
from imgcaption_aws.settings import AwsSettings
from imgcaption_aws.source import iter_objects
from imgcaption_cli.backfill_command import backfill

REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_blip(tmp_path_factory.mktemp("blip") / "model")


@pytest.fixture(scope="module")
def florence2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_florence2(tmp_path_factory.mktemp("florence2") / "model")


def as_in_the_image(model_dir: Path, target: Path, model_id: str, precision: str = "fp32") -> Path:
    """The model as the Lambda image holds it: its files and the provenance its build step writes."""
    shutil.copytree(model_dir, target)
    provenance = {"model_id": model_id, "revision": REVISION, "precision": precision}
    (target / PROVENANCE_FILE).write_text(json.dumps(provenance))
    return target


def the_functions_signature(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> Any:
    """What the deployed function records: its captioner, loaded from its environment, weights and all."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return Captioner.from_pretrained(settings=AwsSettings()).signature


CASES = {
    "vit-gpt2 int8": ({"IMGCAPTION_PRECISION": "int8"}, "tiny"),
    "vit-gpt2 fp32 with the stack's options": (
        {"IMGCAPTION_PRECISION": "fp32", "IMGCAPTION_NUM_BEAMS": "4", "IMGCAPTION_MAX_LENGTH": "16"},
        "tiny",
    ),
    "blip int8 with a prompt": ({"IMGCAPTION_PRECISION": "int8", "IMGCAPTION_PROMPT": "a photography of"}, "blip"),
    "blip fp32, the family's options": ({"IMGCAPTION_PRECISION": "fp32"}, "blip"),
    "florence2, its default task token": ({"IMGCAPTION_PRECISION": "int8"}, "florence2"),
}


@pytest.mark.parametrize("case", CASES)
def test_caption_signature_is_the_signature_of_the_captioner_the_function_loads(
    case: str,
    tiny_model_dir: Path,
    blip_dir: Path,
    florence2_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment, family = CASES[case]
    source = {"tiny": tiny_model_dir, "blip": blip_dir, "florence2": florence2_dir}[family]
    model_dir = as_in_the_image(source, tmp_path / "opt-model", model_id=f"org/{family}")
    environment = {"IMGCAPTION_MODEL": str(model_dir), "IMGCAPTION_THREADS": "1", **environment}

    expected = the_functions_signature(monkeypatch, environment)
    assert caption_signature(settings=AwsSettings()) == expected
    assert expected.model == f"org/{family}" and expected.revision == REVISION


def test_a_copy_of_config_json_and_the_provenance_file_is_enough(
    blip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No weights are read: the machine running backfill needs neither them nor the time to load them."""
    in_image = as_in_the_image(blip_dir, tmp_path / "opt-model", model_id="Salesforce/blip-image-captioning-base")
    header_only = tmp_path / "header-only"
    header_only.mkdir()
    for name in ("config.json", PROVENANCE_FILE):
        shutil.copyfile(in_image / name, header_only / name)
    prompt = {"IMGCAPTION_PRECISION": "int8", "IMGCAPTION_PROMPT": "a picture of", "IMGCAPTION_THREADS": "1"}

    expected = the_functions_signature(monkeypatch, {"IMGCAPTION_MODEL": str(in_image), **prompt})
    assert caption_signature(str(header_only), settings=AwsSettings()) == expected


def test_the_pinned_default_model_needs_no_config_at_all() -> None:
    """The stack's default image: the hub id at the pinned commit is a vit-gpt2, so the signature is known offline
    (a test run has no hub) and without a model runtime."""
    signature = caption_signature(precision="int8", settings=AwsSettings())
    assert (signature.model, signature.revision) == (
        "nlpconnect/vit-gpt2-image-captioning",
        "dc68f91c06a1ba6f15268e5b9c13ae7a7c514084",
    )
    assert (signature.precision, signature.generation.key) == ("int8", "beams4-len16")


# ------------------------------------------------------------------------------------- through the command


BUCKET = "archive"


@pytest.fixture
def aws(fake_aws_credentials: None) -> Iterator[dict[str, Any]]:
    with backfill_account(BUCKET) as account:
        yield account


def run_backfill(aws: dict[str, Any], *args: str) -> Any:
    """``imgcaption backfill s3://archive/ --skip-existing --table captions ARGS`` against the mocked account."""
    common = [f"s3://{BUCKET}/", "--queue-url", aws["queue_url"], "--region", "us-east-1"]
    return CliRunner().invoke(backfill, [*common, "--skip-existing", "--table", "captions", *args])


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_backfill_skips_what_the_function_captioned_with_a_prompt_and_queues_the_rest(
    aws: dict[str, Any], blip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function (a BLIP with a prompt, int8) captioned one of two objects; backfill, told the same model and
    prompt, queues only the other. Caught (checked on a copy of the code): backfill's signature built from the
    settings alone (the family's beams and new-token budget, and the model id of the provenance file, lost)."""
    model_dir = as_in_the_image(blip_dir, tmp_path / "opt-model", model_id="Salesforce/blip-image-captioning-base")
    for index, key in enumerate(("done.png", "new.png")):
        aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=png(index))
    listing = iter_objects(aws["s3"], f"s3://{BUCKET}/")
    listed = {ref.location.key: ref for ref in listing if isinstance(ref, S3ObjectRef)}
    monkeypatch.setenv("IMGCAPTION_PROMPT", "a photography of")
    captioner = Captioner.from_pretrained(str(model_dir), precision="int8", threads=1, settings=AwsSettings())
    done = listed["done.png"]
    aws["store"].record([Outcome(done, captioner.caption(png(0), source=done.uri))])

    same = ("--model", str(model_dir), "--precision", "int8")
    result = run_backfill(aws, *same)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["enqueued"], summary["already_captioned"]) == (1, 1)

    other_prompt = run_backfill(aws, *same, "--prompt", "a picture of", "--dry-run")
    assert other_prompt.exit_code == 0, other_prompt.output
    assert json.loads(other_prompt.stdout)["already_captioned"] == 0  # another prompt is another caption


def test_backfill_refuses_a_prompt_the_model_family_cannot_take(aws: dict[str, Any], tiny_model_dir: Path) -> None:
    result = run_backfill(aws, "--model", str(tiny_model_dir), "--prompt", "a photography of")
    assert result.exit_code == 2
    assert "take no prompt" in result.output
