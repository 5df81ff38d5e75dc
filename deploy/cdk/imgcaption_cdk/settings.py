"""Typed deployment settings, read from ``cdk.json`` context so that a typo fails the synth instead of deploying.

Configuration lives under one context key, ``imgcaption`` (a JSON object in ``cdk.json``). Single fields can be
overridden on the command line with ``cdk deploy -c imgcaption:memory_mb=4096``; command-line values arrive as
strings and are coerced by pydantic.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self, get_args

from constructs import Node
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from imgcaption_cdk import defaults

CONTEXT_KEY = "imgcaption"

# The retention periods CloudWatch Logs accepts, by the name of aws_logs.RetentionDays.
LOG_RETENTION_CHOICES: dict[int, str] = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS",
    1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# S3's general purpose bucket naming rules: 3-63 characters, lower case, digits, dots and hyphens.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_FAMILIES: tuple[str, ...] = get_args(defaults.Family)
# Settings whose default follows from the model: an empty command-line value (or null) asks for that default.
_FOLLOW_THE_MODEL = ("model_family", "model_revision", "memory_mb")


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in {"", "none", "null"})


class StackSettings(BaseModel):
    """Everything an operator may change about the deployment; defaults come from ``defaults.py``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stack_name: str = Field(default="ImgCaption", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
    removal_policy: Literal["retain", "destroy"] = Field(
        default="retain", description="'destroy' is for throw-away dev stacks only; data is kept by default."
    )

    # bucket and notifications
    bucket_name: str | None = Field(
        default=None,
        description="An existing bucket (this account and region) to watch instead of creating one: the stack adds "
        "its notifications and the function's read grant, and otherwise leaves the bucket as it is.",
    )
    watch_prefix: str = Field(default=defaults.WATCH_PREFIX, max_length=512)
    image_suffixes: tuple[str, ...] = Field(default=defaults.IMAGE_SUFFIXES, min_length=1)
    notify_on_delete: bool = Field(default=False, description="Also send OBJECT_REMOVED events to the queue.")
    noncurrent_version_retention_days: int = Field(default=defaults.NONCURRENT_VERSION_RETENTION_DAYS, ge=1)
    access_log_retention_days: int = Field(default=defaults.ACCESS_LOG_RETENTION_DAYS, ge=1)

    # model
    model_id: str = Field(default=defaults.MODEL_ID, min_length=1)
    model_family: defaults.Family = Field(
        default=defaults.FAMILY,
        description="The model's family; known for the reference models (defaults.REFERENCE_MODELS), required for "
        "any other. It picks the image's build stage and the memory default; the build checks it.",
    )
    model_revision: str = Field(
        default=defaults.MODEL_REVISION,
        pattern=r"^[0-9a-f]{40}$",
        description="The commit to build from; required for any model but the default one.",
    )
    precision: defaults.Precision = defaults.PRECISION
    num_beams: int | None = Field(default=None, ge=1, le=16, description="None: the family's default.")
    max_length: int | None = Field(default=None, ge=2, le=256, description="None: the family's default.")
    max_new_tokens: int | None = Field(default=None, ge=1, le=255, description="Replaces max_length when set.")
    prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="Text given with each image: BLIP's caption start, Florence-2's task token, a chat model's "
        "instruction. None: the family's default. Part of every caption's identity in the table.",
    )
    max_bytes: int = Field(default=defaults.MAX_BYTES, ge=1)
    max_pixels: int = Field(default=defaults.MAX_PIXELS, ge=1)

    # function
    memory_mb: int = Field(
        default=defaults.MEMORY_MB[defaults.FAMILY][defaults.PRECISION],
        ge=128,
        le=10240,
        description="Default: the family's measured size for the precision (defaults.MEMORY_MB).",
    )
    timeout_s: int = Field(default=defaults.TIMEOUT_S, ge=1, le=900)
    architecture: defaults.Architecture = defaults.ARCHITECTURE
    reserved_concurrency: int | None = Field(default=defaults.RESERVED_CONCURRENCY, ge=1)
    provisioned_concurrency: int = Field(default=defaults.PROVISIONED_CONCURRENCY, ge=0)
    log_retention_days: int = defaults.LOG_RETENTION_DAYS

    # queue and event source
    batch_size: int = Field(default=defaults.BATCH_SIZE, ge=1, le=10_000)
    max_batching_window_s: int = Field(default=defaults.MAX_BATCHING_WINDOW_S, ge=0, le=300)
    max_concurrency: int | None = Field(default=defaults.MAX_CONCURRENCY, ge=2, le=1000)
    max_receive_count: int = Field(default=defaults.MAX_RECEIVE_COUNT, ge=1, le=1000)
    queue_retention_days: int = Field(default=defaults.QUEUE_RETENTION_DAYS, ge=1, le=14)

    # alarms
    oldest_message_age_alarm_s: int = Field(default=defaults.OLDEST_MESSAGE_AGE_ALARM_S, ge=60)
    alarm_email: str | None = Field(default=None, description="Subscribed to the alarm topic when set.")

    @field_validator("image_suffixes", mode="before")
    @classmethod
    def _split_comma_list(cls, value: Any) -> Any:
        """Accept ``-c imgcaption:image_suffixes=.jpg,.png`` from the command line."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator(
        "reserved_concurrency",
        "max_concurrency",
        "alarm_email",
        "bucket_name",
        "num_beams",
        "max_length",
        "max_new_tokens",
        "prompt",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        """Let the command line switch an optional setting off with ``-c imgcaption:alarm_email=``."""
        if _unset(value):
            return None
        return value

    @model_validator(mode="before")
    @classmethod
    def _follow_the_model(cls, data: Any) -> Any:
        """Fill in what follows from ``model_id`` (family, and the pinned revision of the default model) and from
        family and precision (memory), where the context leaves it out; refuse a model the stack cannot place."""
        if not isinstance(data, dict):
            return data
        values = {name: value for name, value in data.items() if not (name in _FOLLOW_THE_MODEL and _unset(value))}
        model_id = values.get("model_id", defaults.MODEL_ID)
        if not isinstance(model_id, str):
            return values
        if model_id in defaults.REMOTE_CODE_MODELS:
            raise ValueError(
                f"model_id {model_id!r} ships remote code in a layout transformers 5 does not load natively; "
                f"use {defaults.REMOTE_CODE_MODELS[model_id]!r}, the same weights in the native layout"
            )
        known = defaults.REFERENCE_MODELS.get(model_id)
        family = values.setdefault("model_family", known)
        if family is None:
            raise ValueError(
                f"the stack does not know the family of model_id {model_id!r}: set model_family to one of "
                f"{', '.join(_FAMILIES)} (the image build checks it against the model's config.json), and memory_mb "
                "if the model is larger than its family's reference model"
            )
        if known is not None and family != known:
            raise ValueError(f"model_id {model_id!r} is a {known} model, not {family}: drop model_family or fix it")
        if "model_revision" not in values and model_id != defaults.MODEL_ID:
            raise ValueError(
                f"pin model_revision (a 40-digit commit) for {model_id!r}, so that a moved hub branch never changes "
                f"what is deployed: `git ls-remote https://huggingface.co/{model_id} refs/heads/main` prints it"
            )
        precision = values.get("precision", defaults.PRECISION)
        if "memory_mb" not in values and family in defaults.MEMORY_MB and precision in get_args(defaults.Precision):
            values["memory_mb"] = defaults.MEMORY_MB[family][precision]
        return values

    @field_validator("watch_prefix")
    @classmethod
    def _prefix_is_a_key_prefix(cls, value: str) -> str:
        if value.startswith("/"):
            raise ValueError("S3 keys do not start with '/': use 'uploads/', not '/uploads/'")
        if "*" in value:
            raise ValueError("the prefix is literal, not a glob")
        return value

    @field_validator("image_suffixes")
    @classmethod
    def _normalise_suffixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Lower-case and de-duplicate: S3 rejects two notification rules with the same filter at deploy time."""
        normalised: list[str] = []
        for suffix in value:
            if not re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix):
                raise ValueError(f"suffix {suffix!r} must look like '.jpg'")
            if suffix.lower() not in normalised:
                normalised.append(suffix.lower())
        return tuple(normalised)

    @field_validator("bucket_name")
    @classmethod
    def _is_a_bucket_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not _BUCKET_NAME.match(value) or ".." in value or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value):
            raise ValueError(f"{value!r} is not an S3 bucket name (3-63 of a-z, 0-9, '.', '-'; a name, not an ARN)")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention_is_a_cloudwatch_value(cls, value: int) -> int:
        if value not in LOG_RETENTION_CHOICES:
            raise ValueError(f"CloudWatch Logs retention must be one of {sorted(LOG_RETENTION_CHOICES)}")
        return value

    @field_validator("alarm_email")
    @classmethod
    def _looks_like_an_email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("alarm_email must be an e-mail address")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Reject combinations that synthesize but misbehave in AWS (throttling, rejected event source, a function
        that cannot hold its model, generation options the model's family refuses at its first invocation)."""
        needed = defaults.MODEL_PEAK_RSS_MB[self.model_family][self.precision] + defaults.BATCH_HEADROOM_MB
        if self.memory_mb < needed:
            raise ValueError(
                f"memory_mb {self.memory_mb} cannot hold the {self.model_family} model in {self.precision}: its "
                f"measured peak is {needed - defaults.BATCH_HEADROOM_MB} MB, plus {defaults.BATCH_HEADROOM_MB} MB "
                f"for a batch of images; its default is {defaults.MEMORY_MB[self.model_family][self.precision]} MB"
            )
        if self.max_length is not None and self.max_new_tokens is not None:
            raise ValueError("set max_length or max_new_tokens, not both (max_new_tokens would win)")
        if self.model_family == "chat" and self.max_length is not None:
            raise ValueError(
                "a chat model's max_length would count its instruction and image tokens: set max_new_tokens instead"
            )
        if self.prompt is not None and self.model_family in defaults.PROMPTLESS_FAMILIES:
            raise ValueError(f"a {self.model_family} model takes no prompt: leave prompt unset")
        tasks = defaults.FLORENCE2_TASKS
        if self.prompt is not None and self.model_family == "florence2" and self.prompt not in tasks:
            raise ValueError(f"Florence-2's prompt is a captioning task token, one of {', '.join(tasks)}")
        if self.batch_size > 10 and self.max_batching_window_s == 0:
            raise ValueError("batch_size above 10 needs max_batching_window_s >= 1 (an SQS event source rule)")
        if self.reserved_concurrency is not None:
            if self.max_concurrency is not None and self.max_concurrency > self.reserved_concurrency:
                raise ValueError("max_concurrency above reserved_concurrency only produces throttles")
            if self.provisioned_concurrency > self.reserved_concurrency:
                raise ValueError("provisioned_concurrency cannot exceed reserved_concurrency")
        return self

    @property
    def image_suffix_variants(self) -> tuple[str, ...]:
        """Lower- and upper-case variants (``.jpg`` and ``.JPG``): S3 suffix filters are case-sensitive."""
        return tuple(variant for suffix in self.image_suffixes for variant in (suffix, suffix.upper()))

    @property
    def visibility_timeout_s(self) -> int:
        """AWS guidance for SQS event sources: 6x the function timeout plus the batching window."""
        return defaults.VISIBILITY_TIMEOUT_FACTOR * self.timeout_s + self.max_batching_window_s

    @property
    def image_target(self) -> defaults.ImageTarget:
        """The Dockerfile stage the image is built to: it follows the model's family and the precision."""
        return defaults.image_target(self.model_family, self.precision)

    @property
    def retain(self) -> bool:
        return self.removal_policy == "retain"

    @classmethod
    def from_context(cls, node: Node) -> StackSettings:
        """Read the ``imgcaption`` context object, then per-field ``imgcaption:<field>`` overrides."""
        raw = node.try_get_context(CONTEXT_KEY) or {}
        if not isinstance(raw, dict):
            raise TypeError(f"context '{CONTEXT_KEY}' must be a JSON object, got {type(raw).__name__}")
        values: dict[str, Any] = dict(raw)
        for name in cls.model_fields:
            override = node.try_get_context(f"{CONTEXT_KEY}:{name}")
            if override is not None:
                values[name] = override
        return cls.model_validate(values)
