"""The captioning function: the container image, its configuration, and how the queue invokes it."""

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ecr_assets as ecr_assets
from cdk_synth import Synth

from imgcaption_cdk import defaults
from imgcaption_cdk.environment import max_pixels, max_pixels_for_memory
from imgcaption_cdk.function import ASSET_EXCLUDES
from imgcaption_cdk.settings import StackSettings

pytestmark = pytest.mark.infra

CONTRACT_ENVIRONMENT_NAMES = {
    "IMGCAPTION_TABLE_NAME",
    "IMGCAPTION_MODEL",
    "IMGCAPTION_PRECISION",
    "IMGCAPTION_MAX_BYTES",
    "IMGCAPTION_MAX_PIXELS",
    "IMGCAPTION_LOCAL_FILES_ONLY",
    "IMGCAPTION_THREADS",
    "IMGCAPTION_BATCH_SIZE",
    "HF_HUB_OFFLINE",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
}


def function_props(synth: Synth) -> dict[str, Any]:
    props: dict[str, Any] = synth.resources[synth.logical_id(synth.stack.captioner.function)]["Properties"]
    return props


def event_source(synth: Synth) -> dict[str, Any]:
    _, mapping = synth.only("AWS::Lambda::EventSourceMapping")
    props: dict[str, Any] = mapping["Properties"]
    return props


def test_function_is_a_container_image_with_the_lambda_handler(default: Synth) -> None:
    props = function_props(default)
    assert props["PackageType"] == "Image"
    assert props["ImageConfig"] == {"Command": ["imgcaption_lambda.handler.handler"]}


def test_function_sizing_defaults_come_from_the_defaults_module(default: Synth) -> None:
    props = function_props(default)
    assert props["MemorySize"] == defaults.MEMORY_MB["vit-gpt2"]["int8"] == 1769
    assert props["Timeout"] == defaults.TIMEOUT_S == 120
    assert props["Architectures"] == ["x86_64"]
    assert "ReservedConcurrentExecutions" not in props


def test_function_sizing_is_configurable(custom: Synth) -> None:
    props = function_props(custom)
    assert (props["MemorySize"], props["Timeout"], props["Architectures"]) == (4096, 300, ["arm64"])
    assert props["ReservedConcurrentExecutions"] == 10


def test_function_traces_with_xray_and_logs_json_to_its_own_retained_log_group(default: Synth) -> None:
    props = function_props(default)
    log_group_id = default.logical_id(default.stack.captioner.log_group)
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["LoggingConfig"] == {"LogFormat": "JSON", "LogGroup": {"Ref": log_group_id}}
    assert default.resources[log_group_id]["Properties"]["RetentionInDays"] == 30


def test_log_retention_is_configurable(custom: Synth) -> None:
    _, log_group = custom.only("AWS::Logs::LogGroup")
    assert log_group["Properties"]["RetentionInDays"] == 90


def test_environment_is_exactly_the_contract_with_the_core_settings(default: Synth) -> None:
    env = function_props(default)["Environment"]["Variables"]
    assert set(env) == CONTRACT_ENVIRONMENT_NAMES
    assert env == {
        "IMGCAPTION_TABLE_NAME": {"Ref": default.logical_id(default.stack.captions.table)},
        "IMGCAPTION_MODEL": "/opt/model",
        "IMGCAPTION_PRECISION": "int8",
        "IMGCAPTION_MAX_BYTES": str(50 * 1024 * 1024),
        "IMGCAPTION_MAX_PIXELS": "51000000",  # what 1,769 MB affords beside the int8 model
        "IMGCAPTION_LOCAL_FILES_ONLY": "true",
        "IMGCAPTION_THREADS": "1",
        "IMGCAPTION_BATCH_SIZE": "10",
        "HF_HUB_OFFLINE": "1",
        "POWERTOOLS_SERVICE_NAME": "imgcaption",
        "POWERTOOLS_METRICS_NAMESPACE": "imgcaption",
    }


def test_generation_options_are_the_families_own_unless_set(custom: Synth) -> None:
    """Set, they reach the core settings; unset (the default synth above), the family's defaults apply."""
    env = function_props(custom)["Environment"]["Variables"]
    assert (env["IMGCAPTION_NUM_BEAMS"], env["IMGCAPTION_MAX_NEW_TOKENS"]) == ("3", "20")
    assert "IMGCAPTION_MAX_LENGTH" not in env


def test_the_pixel_cap_follows_from_the_memory_beside_the_model(default: Synth, custom: Synth) -> None:
    """(memory − the model's peak RSS − 256 MB for the batch) / 17 B per pixel, the worst measured decode (WebP)."""
    # 1769 MB, int8: (1769 − 678 − 256) MiB / 17 B = 51.5 MP → 51 MP
    assert function_props(default)["Environment"]["Variables"]["IMGCAPTION_MAX_PIXELS"] == "51000000"
    # 4096 MB, fp32: (4096 − 1587 − 256) MiB / 17 B = 139 MP → the 100 MP ceiling
    assert function_props(custom)["Environment"]["Variables"]["IMGCAPTION_MAX_PIXELS"] == "100000000"


@pytest.mark.parametrize(
    ("memory_mb", "precision", "megapixels"),
    [(1024, "int8", 5), (2048, "int8", 68), (3008, "int8", 100), (2624, "fp32", 48), (128, "int8", 1)],
)
def test_the_memory_rule_scales_with_memory_and_model_and_never_reaches_zero(
    memory_mb: int, precision: defaults.Precision, megapixels: int
) -> None:
    assert max_pixels_for_memory(memory_mb, precision) == megapixels * 1_000_000


def test_a_pixel_cap_set_in_the_context_wins_over_the_memory_rule() -> None:
    assert max_pixels(StackSettings(max_pixels=20_000_000)) == 20_000_000
    assert max_pixels(StackSettings()) == max_pixels_for_memory(1769, defaults.PRECISION)


def test_threads_follow_the_whole_vcpus_the_memory_buys(custom: Synth) -> None:
    # 4096 MB buys 2.3 vCPUs (1 per 1,769 MB): two threads; the default 1769 MB buys exactly one: one thread.
    assert function_props(custom)["Environment"]["Variables"]["IMGCAPTION_THREADS"] == "2"


def test_precision_reaches_both_the_environment_and_the_image_build(custom: Synth) -> None:
    assert function_props(custom)["Environment"]["Variables"]["IMGCAPTION_PRECISION"] == "fp32"
    (image,) = custom.assets_manifest()["dockerImages"].values()
    assert image["source"]["dockerBuildArgs"]["PRECISION"] == "fp32"
    assert image["source"]["dockerBuildTarget"] == "runtime-torch"  # exact mode needs torch: not the slim stage
    assert image["source"]["platform"] == "linux/arm64"


def test_the_queue_invokes_the_live_alias_with_partial_batch_responses(default: Synth) -> None:
    alias_id = default.logical_id(default.stack.captioner.alias)
    assert default.resources[alias_id]["Properties"]["Name"] == "live"
    assert "ProvisionedConcurrencyConfig" not in default.resources[alias_id]["Properties"]
    mapping = event_source(default)
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [default.logical_id(default.stack.ingest.queue), "Arn"]}
    assert mapping["FunctionName"]["Fn::Join"][1][1] == ":live"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == defaults.BATCH_SIZE == 10
    assert mapping["MaximumBatchingWindowInSeconds"] == 0
    assert "ScalingConfig" not in mapping


def test_event_source_and_provisioned_concurrency_are_configurable(custom: Synth) -> None:
    mapping = event_source(custom)
    assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"]) == (20, 10)
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 5}
    alias_id = custom.logical_id(custom.stack.captioner.alias)
    assert custom.resources[alias_id]["Properties"]["ProvisionedConcurrencyConfig"] == {
        "ProvisionedConcurrentExecutions": 2
    }


def test_image_is_built_from_the_repository_root_with_the_pinned_model(default: Synth) -> None:
    (image,) = default.assets_manifest()["dockerImages"].values()
    source = image["source"]
    assert source["dockerFile"] == "adapters/lambda/Dockerfile"
    assert source["dockerBuildArgs"] == {
        "MODEL_ID": "nlpconnect/vit-gpt2-image-captioning",
        "MODEL_REVISION": "dc68f91c06a1ba6f15268e5b9c13ae7a7c514084",
        "MODEL_FAMILY": "vit-gpt2",
        "PRECISION": "int8",
    }
    assert source["dockerBuildTarget"] == "runtime"  # the slim int8 ONNX stage, without torch
    assert source["platform"] == "linux/amd64"
    staged = default.outdir / source["directory"]
    assert (staged / "adapters/lambda/Dockerfile").is_file()
    assert (staged / "pyproject.toml").is_file()
    assert (staged / "src/imgcaption/__init__.py").is_file()


def test_staged_build_context_leaves_out_the_venv_caches_and_other_trees(default: Synth) -> None:
    (image,) = default.assets_manifest()["dockerImages"].values()
    staged = default.outdir / image["source"]["directory"]
    files = [p for p in staged.rglob("*") if p.is_file()]
    top_level = {p.relative_to(staged).parts[0] for p in files}
    # LICENSE: pyproject's license-files, which the Dockerfile copies for the wheel build
    allowed = {"adapters", "src", "pyproject.toml", "README.md", "LICENSE", "constraints.txt", ".dockerignore"}
    assert top_level <= allowed
    assert not any("__pycache__" in p.parts or p.suffix == ".pyc" for p in files)
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    assert size_mb < 20, f"the Docker build context is {size_mb:.1f} MB: something large is no longer excluded"


def test_the_exclude_list_alone_keeps_the_venv_out_should_the_dockerignore_loosen(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for relative in (".venv/lib/torch.so", ".git/HEAD", "src/imgcaption/__pycache__/x.pyc", "tests/test_x.py",
                     "deploy/cdk/cdk.out/manifest.json", "src/imgcaption/__init__.py", "adapters/lambda/Dockerfile",
                     "pyproject.toml"):  # fmt: skip
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text("x")
    app = cdk.App(outdir=str(tmp_path / "out"))
    asset = ecr_assets.DockerImageAsset(
        cdk.Stack(app, "Scratch"),
        "Image",
        directory=str(root),
        file="adapters/lambda/Dockerfile",
        exclude=list(ASSET_EXCLUDES),
        ignore_mode=cdk.IgnoreMode.DOCKER,
    )
    staged = tmp_path / "out" / f"asset.{asset.asset_hash}"
    assert sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file()) == [
        "adapters/lambda/Dockerfile",
        "pyproject.toml",
        "src/imgcaption/__init__.py",
    ]
