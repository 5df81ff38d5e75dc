"""Any supported model family deploys: its image build target, build arguments and memory follow from the model.

BLIP (int8: torch's dynamic quantization in the torch stage) and Florence-2 (fp32) are synthesized whole, with
cdk-nag; the settings that cannot be placed fail the synth with the fix in the message. The family names, and which
stage each family and precision builds to, are the contract with the core and the Dockerfile, pinned here.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import aws_cdk as cdk
import pytest
from cdk_synth import Synth, synth
from pydantic import ValidationError

import prepare_model
from imgcaption.backends.families import FAMILIES
from imgcaption_cdk import defaults
from imgcaption_cdk.environment import max_pixels_for_memory, threads_for_memory
from imgcaption_cdk.settings import StackSettings

pytestmark = pytest.mark.infra

COMMIT = "82a37760796d32b1411fe092ab5d4e227313294b"  # any 40 hex digits: the synth never fetches it
BLIP = "Salesforce/blip-image-captioning-base"
FLORENCE = "florence-community/Florence-2-base"


def settings_from(context: dict[str, Any]) -> StackSettings:
    return StackSettings.from_context(cdk.App(context=context).node)


@pytest.fixture(scope="module")
def blip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    outdir = tmp_path_factory.mktemp("cdk.out.blip")
    yield synth(outdir, {"imgcaption": {"model_id": BLIP, "model_revision": COMMIT}}, outdir=outdir)


@pytest.fixture(scope="module")
def florence(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    outdir = tmp_path_factory.mktemp("cdk.out.florence")
    context = {"imgcaption": {"model_id": FLORENCE, "model_revision": COMMIT, "precision": "fp32"}}
    yield synth(outdir, context, outdir=outdir)


def image_source(synthesized: Synth) -> dict[str, Any]:
    (image,) = synthesized.assets_manifest()["dockerImages"].values()
    source: dict[str, Any] = image["source"]
    return source


def function_props(synthesized: Synth) -> dict[str, Any]:
    props: dict[str, Any] = synthesized.resources[synthesized.logical_id(synthesized.stack.captioner.function)][
        "Properties"
    ]
    return props


@pytest.mark.parametrize(
    ("fixture", "model_id", "family", "precision"),
    [("blip", BLIP, "blip", "int8"), ("florence", FLORENCE, "florence2", "fp32")],
)
def test_another_family_builds_the_torch_stage_with_its_model_and_family(
    fixture: str, model_id: str, family: defaults.Family, precision: defaults.Precision, request: pytest.FixtureRequest
) -> None:
    source = image_source(request.getfixturevalue(fixture))
    assert source["dockerBuildArgs"] == {
        "MODEL_ID": model_id,
        "MODEL_REVISION": COMMIT,
        "MODEL_FAMILY": family,  # the build checks the downloaded config.json against it
        "PRECISION": precision,
    }
    assert source["dockerBuildTarget"] == "runtime-torch"  # only vit-gpt2 has the slim ONNX stage, even in int8


@pytest.mark.parametrize(
    ("fixture", "family", "precision"), [("blip", "blip", "int8"), ("florence", "florence2", "fp32")]
)
def test_another_family_gets_its_measured_memory_and_what_follows_from_it(
    fixture: str, family: defaults.Family, precision: defaults.Precision, request: pytest.FixtureRequest
) -> None:
    props = function_props(request.getfixturevalue(fixture))
    memory = defaults.MEMORY_MB[family][precision]
    assert props["MemorySize"] == memory
    assert memory >= defaults.MODEL_PEAK_RSS_MB[family][precision] + defaults.BATCH_HEADROOM_MB
    env = props["Environment"]["Variables"]
    assert env["IMGCAPTION_PRECISION"] == precision
    assert env["IMGCAPTION_THREADS"] == str(threads_for_memory(memory))
    assert env["IMGCAPTION_MAX_PIXELS"] == str(max_pixels_for_memory(memory, precision, family))
    # the family's own generation defaults (Florence-2: 3 beams, 128 new tokens), not vit-gpt2's 4 beams and 16
    assert not {"IMGCAPTION_NUM_BEAMS", "IMGCAPTION_MAX_LENGTH", "IMGCAPTION_MAX_NEW_TOKENS"} & env.keys()


def test_the_default_model_still_builds_the_slim_onnx_stage(default: Synth) -> None:
    source = image_source(default)
    assert (source["dockerBuildTarget"], source["dockerBuildArgs"]["MODEL_FAMILY"]) == ("runtime", "vit-gpt2")


def test_a_checkpoint_the_stack_does_not_know_deploys_with_its_family_named() -> None:
    large = "Salesforce/blip-image-captioning-large"
    settings = StackSettings(model_id=large, model_family="blip", model_revision=COMMIT)
    assert (settings.image_target, settings.memory_mb) == ("runtime-torch", defaults.MEMORY_MB["blip"]["int8"])
    assert StackSettings(**settings.model_dump(exclude={"memory_mb"}), memory_mb=6144).memory_mb == 6144


def test_command_line_overrides_switch_the_model_and_its_memory_follows() -> None:
    settings = settings_from({"imgcaption:model_id": FLORENCE, "imgcaption:model_revision": COMMIT})
    assert (settings.model_family, settings.image_target) == ("florence2", "runtime-torch")
    assert settings.memory_mb == defaults.MEMORY_MB["florence2"]["int8"]
    emptied = settings_from(
        {"imgcaption": {"model_id": BLIP, "model_revision": COMMIT, "memory_mb": 8192}, "imgcaption:memory_mb": ""}
    )
    assert emptied.memory_mb == defaults.MEMORY_MB["blip"]["int8"]  # an empty value asks for the default again


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model_id": "someone/vit-captioner", "model_revision": COMMIT}, "set model_family to one of vit-gpt2, blip"),
        ({"model_id": BLIP}, "pin model_revision .*git ls-remote https://huggingface.co/Salesforce/blip"),
        ({"model_id": BLIP, "model_revision": COMMIT, "model_family": "git"}, "is a blip model, not git"),
        ({"model_id": "microsoft/Florence-2-base"}, "use 'florence-community/Florence-2-base'"),
        ({"model_id": "someone/x", "model_revision": COMMIT, "model_family": "blip2"}, "model_family"),
        ({"model_id": BLIP, "model_revision": COMMIT, "memory_mb": 1769}, "cannot hold the blip model in int8"),
        ({"memory_mb": 768}, "cannot hold the vit-gpt2 model in int8"),
        (
            {"model_id": "HuggingFaceTB/SmolVLM-256M-Instruct", "model_revision": COMMIT, "max_length": 32},
            "set max_new_tokens instead",
        ),
        ({"max_length": 20, "max_new_tokens": 20}, "not both"),
        ({"prompt": "a photo of"}, "a vit-gpt2 model takes no prompt"),
        ({"model_id": FLORENCE, "model_revision": COMMIT, "prompt": "describe it"}, "one of <CAPTION>"),
    ],
)
def test_a_model_the_stack_cannot_place_fails_the_synth_with_the_fix(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StackSettings(**overrides)


def test_the_families_are_the_cores() -> None:
    assert set(get_args(defaults.Family)) == set(FAMILIES)


def test_the_prompt_rules_are_the_cores() -> None:
    from imgcaption.backends.families import FLORENCE2_TASKS

    assert defaults.FLORENCE2_TASKS == FLORENCE2_TASKS
    assert set(defaults.PROMPTLESS_FAMILIES) == {name for name, family in FAMILIES.items() if family.prompt == "none"}


def test_a_prompt_reaches_the_function_as_the_core_reads_it(tmp_path: Path) -> None:
    context = {"imgcaption": {"model_id": BLIP, "model_revision": COMMIT, "prompt": "a photography of"}}
    env = function_props(synth(tmp_path, context, outdir=tmp_path))["Environment"]["Variables"]
    assert env["IMGCAPTION_PROMPT"] == "a photography of"
    assert set(defaults.REFERENCE_MODELS.values()) == set(FAMILIES)  # one measured reference model per family
    assert set(defaults.MEMORY_MB) == set(defaults.MODEL_PEAK_RSS_MB) == set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("precision", get_args(defaults.Precision))
def test_the_build_target_is_the_stage_the_image_build_prepares_the_model_for(
    family: defaults.Family, precision: defaults.Precision
) -> None:
    assert defaults.image_target(family, precision) == prepare_model.image_stage(family, precision)


def test_the_build_targets_are_stages_of_the_dockerfile() -> None:
    dockerfile = (defaults.REPO_ROOT / defaults.DOCKERFILE).read_text()
    for target in get_args(defaults.ImageTarget):
        assert f" AS {target}\n" in dockerfile, target


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("precision", get_args(defaults.Precision))
def test_each_default_memory_holds_the_peak_a_batch_and_a_48_mp_photo(
    family: defaults.Family, precision: defaults.Precision
) -> None:
    """The documented rule: peak + batch headroom + decode budget, rounded up to 64 MB, at least one full vCPU."""
    needed = defaults.MODEL_PEAK_RSS_MB[family][precision] + defaults.BATCH_HEADROOM_MB + defaults.DECODE_BUDGET_MB
    assert defaults.MEMORY_MB[family][precision] == max(defaults.MB_PER_VCPU, -(-needed // 64) * 64)
    assert max_pixels_for_memory(defaults.MEMORY_MB[family][precision], precision, family) >= 48_000_000


def test_the_memory_table_is_in_the_deployment_readme() -> None:
    readme = (Path(__file__).parents[2] / "deploy" / "cdk" / "README.md").read_text()
    for family, sizes in defaults.MEMORY_MB.items():
        for precision, memory in sizes.items():
            peak = defaults.MODEL_PEAK_RSS_MB[family][precision]
            row = f"| {family} | {precision} | {peak:,} | {memory:,} |"
            assert row in readme, row
