"""The Lambda environment: the names the core's pydantic-settings read (prefix ``IMGCAPTION_``).

The names are duplicated here on purpose: the infrastructure code must not import the ``imgcaption`` core (it would
drag torch into ``cdk synth``). ``tests/infra`` pins the contract.
"""

from typing import Final

from imgcaption_cdk import defaults
from imgcaption_cdk.settings import StackSettings

TABLE_NAME: Final = "IMGCAPTION_TABLE_NAME"
MODEL: Final = "IMGCAPTION_MODEL"
PRECISION: Final = "IMGCAPTION_PRECISION"
NUM_BEAMS: Final = "IMGCAPTION_NUM_BEAMS"
MAX_LENGTH: Final = "IMGCAPTION_MAX_LENGTH"
MAX_NEW_TOKENS: Final = "IMGCAPTION_MAX_NEW_TOKENS"
PROMPT: Final = "IMGCAPTION_PROMPT"
MAX_BYTES: Final = "IMGCAPTION_MAX_BYTES"
MAX_PIXELS: Final = "IMGCAPTION_MAX_PIXELS"
LOCAL_FILES_ONLY: Final = "IMGCAPTION_LOCAL_FILES_ONLY"
THREADS: Final = "IMGCAPTION_THREADS"
BATCH_SIZE: Final = "IMGCAPTION_BATCH_SIZE"
HF_HUB_OFFLINE: Final = "HF_HUB_OFFLINE"
POWERTOOLS_SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"

SERVICE_NAME: Final = "imgcaption"


def threads_for_memory(memory_mb: int) -> int:
    """Inference threads worth running: one per whole vCPU the memory size buys (a second, partial one only slows)."""
    return max(1, memory_mb // defaults.MB_PER_VCPU)


def max_pixels_for_memory(
    memory_mb: int, precision: defaults.Precision, family: defaults.Family = defaults.FAMILY
) -> int:
    """The pixel cap the function's memory affords: what is left beside the model's peak and a batch's headroom,
    divided by the worst measured decode cost per pixel; whole megapixels, at least 1, at most the 100 MP ceiling.

    1,769 MB with vit-gpt2 in int8 (the default) affords 51 MP; 4,096 MB with fp32 affords 139 MP, so gets the
    ceiling.
    """
    peak_mb = defaults.MODEL_PEAK_RSS_MB[family][precision]
    spare_bytes = (memory_mb - peak_mb - defaults.BATCH_HEADROOM_MB) * 2**20
    megapixels = spare_bytes // defaults.DECODE_BYTES_PER_PIXEL // 1_000_000
    return min(defaults.MAX_PIXELS, max(1, megapixels) * 1_000_000)


def max_pixels(settings: StackSettings) -> int:
    """``max_pixels`` when the deployment sets it, otherwise what the memory affords."""
    if "max_pixels" in settings.model_fields_set:
        return settings.max_pixels
    return max_pixels_for_memory(settings.memory_mb, settings.precision, settings.model_family)


def generation_environment(settings: StackSettings) -> dict[str, str]:
    """The generation options the deployment sets; those it leaves out are the model family's defaults."""
    options = {
        NUM_BEAMS: settings.num_beams,
        MAX_LENGTH: settings.max_length,
        MAX_NEW_TOKENS: settings.max_new_tokens,
        PROMPT: settings.prompt,
    }
    return {name: str(value) for name, value in options.items() if value is not None}


def function_environment(settings: StackSettings, table_name: str) -> dict[str, str]:
    """Environment of the captioning function: the model is read from the image, never from the hub."""
    return {
        TABLE_NAME: table_name,
        MODEL: defaults.MODEL_DIR_IN_IMAGE,
        PRECISION: settings.precision,
        **generation_environment(settings),
        MAX_BYTES: str(settings.max_bytes),
        MAX_PIXELS: str(max_pixels(settings)),
        LOCAL_FILES_ONLY: "true",
        THREADS: str(threads_for_memory(settings.memory_mb)),
        BATCH_SIZE: str(settings.batch_size),  # one SQS batch is one inference batch
        HF_HUB_OFFLINE: "1",
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE: SERVICE_NAME,
    }
