"""The typed settings: what cdk.json may say, and what it may not."""

import json
from typing import Any

import aws_cdk as cdk
import pytest
from pydantic import ValidationError

from imgcaption_cdk import defaults
from imgcaption_cdk.app import CDK_JSON, cdk_json_context
from imgcaption_cdk.settings import StackSettings

pytestmark = pytest.mark.infra


def settings_from(context: dict[str, Any]) -> StackSettings:
    return StackSettings.from_context(cdk.App(context=context).node)


def test_committed_cdk_json_is_valid_and_uses_the_documented_defaults() -> None:
    settings = settings_from(cdk_json_context())
    assert settings == StackSettings()
    assert (settings.memory_mb, settings.timeout_s, settings.batch_size) == (1769, 120, 10)
    assert (settings.architecture, settings.precision, settings.max_receive_count) == ("x86_64", "int8", 5)
    assert settings.reserved_concurrency is None
    assert settings.provisioned_concurrency == 0
    assert settings.model_id == "nlpconnect/vit-gpt2-image-captioning"
    assert settings.model_revision == "dc68f91c06a1ba6f15268e5b9c13ae7a7c514084"


def test_cdk_json_runs_the_app_and_enables_the_recommended_feature_flags() -> None:
    config = json.loads(CDK_JSON.read_text())
    assert config["app"] == "python3 app.py"
    assert config["context"]["@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"] is True
    assert config["context"]["@aws-cdk/aws-iam:minimizePolicies"] is True


def test_no_context_means_defaults() -> None:
    assert settings_from({}) == StackSettings()


def test_command_line_overrides_arrive_as_strings_and_are_coerced() -> None:
    settings = settings_from(
        {
            "imgcaption": {"memory_mb": 2048},
            "imgcaption:memory_mb": "4096",
            "imgcaption:image_suffixes": ".png,.JPG",
            "imgcaption:reserved_concurrency": "20",
            "imgcaption:notify_on_delete": "true",
        }
    )
    assert settings.memory_mb == 4096  # the per-field override wins over the object
    assert settings.image_suffixes == (".png", ".jpg")
    assert settings.reserved_concurrency == 20
    assert settings.notify_on_delete is True


def test_an_empty_command_line_value_switches_an_optional_setting_off() -> None:
    settings = settings_from({"imgcaption": {"alarm_email": "ops@example.com"}, "imgcaption:alarm_email": ""})
    assert settings.alarm_email is None


def test_a_typo_fails_instead_of_being_ignored() -> None:
    with pytest.raises(ValidationError, match="memory_mbs"):
        settings_from({"imgcaption": {"memory_mbs": 4096}})


def test_the_context_object_must_be_an_object() -> None:
    with pytest.raises(TypeError, match="JSON object"):
        settings_from({"imgcaption": "memory_mb=4096"})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"precision": "fp16"}, "precision"),
        ({"architecture": "arm"}, "architecture"),
        ({"memory_mb": 64}, "memory_mb"),
        ({"timeout_s": 901}, "timeout_s"),
        ({"model_revision": "main"}, "model_revision"),
        ({"watch_prefix": "/uploads/"}, "do not start with '/'"),
        ({"watch_prefix": "uploads/*"}, "literal"),
        ({"image_suffixes": ["jpg"]}, "must look like"),
        ({"image_suffixes": [".tar.gz"]}, "must look like"),
        ({"log_retention_days": 31}, "retention"),
        ({"alarm_email": "not-an-address"}, "e-mail"),
        ({"max_concurrency": 1}, "max_concurrency"),
        ({"batch_size": 11}, "max_batching_window_s"),
        ({"reserved_concurrency": 4, "max_concurrency": 5}, "only produces throttles"),
        ({"reserved_concurrency": 4, "provisioned_concurrency": 5}, "cannot exceed"),
        ({"removal_policy": "snapshot"}, "removal_policy"),
    ],
)
def test_settings_that_would_misbehave_in_aws_are_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StackSettings(**overrides)


def test_suffixes_are_matched_in_both_cases_and_never_twice() -> None:
    settings = StackSettings(image_suffixes=(".JPG", ".png", ".jpg"))
    assert settings.image_suffixes == (".jpg", ".png")
    assert settings.image_suffix_variants == (".jpg", ".JPG", ".png", ".PNG")


def test_visibility_timeout_is_six_function_timeouts_plus_the_batching_window() -> None:
    assert StackSettings().visibility_timeout_s == 6 * defaults.TIMEOUT_S
    assert StackSettings(timeout_s=300, max_batching_window_s=10).visibility_timeout_s == 1810


def test_the_deployment_readme_documents_every_setting() -> None:
    readme = (CDK_JSON.parent / "README.md").read_text()
    undocumented = [name for name in StackSettings.model_fields if f"`{name}`" not in readme]
    assert undocumented == []
