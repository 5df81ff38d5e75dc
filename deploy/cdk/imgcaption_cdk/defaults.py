"""Defaults of the deployment, in one place so the benchmark (issue 7) can retune them with one diff.

Every value here can be overridden from ``cdk.json`` context (see ``settings.py``). The numbers marked
*benchmark* are provisional: they must be replaced by the measured optimum (cost per image at an acceptable
p95 latency and cold start) once the Lambda benchmark exists; until then they are conservative guesses, not
"10 GB by habit".
"""

from pathlib import Path
from typing import Final, Literal

Architecture = Literal["x86_64", "arm64"]
Precision = Literal["fp32", "int8"]
Family = Literal["vit-gpt2", "blip", "git", "florence2", "chat"]  # the core's model families (tests/infra pins them)
PROMPTLESS_FAMILIES: Final[tuple[Family, ...]] = ("vit-gpt2", "git")  # the core refuses a prompt for these
FLORENCE2_TASKS: Final = ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>")  # Florence-2's caption prompts
ImageTarget = Literal["runtime", "runtime-torch"]  # build stages of adapters/lambda/Dockerfile

# --- model baked into the image (build args of adapters/lambda/Dockerfile) ---------------------------------
MODEL_ID: Final = "nlpconnect/vit-gpt2-image-captioning"
MODEL_REVISION: Final = "dc68f91c06a1ba6f15268e5b9c13ae7a7c514084"  # pinned: a moved hub branch never changes prod
FAMILY: Final[Family] = "vit-gpt2"
PRECISION: Final[Precision] = "int8"  # benchmark: the fast mode; fp32 is the exact one
MODEL_DIR_IN_IMAGE: Final = "/opt/model"  # where the Dockerfile stores the snapshot

# The reference checkpoint of each family: the stack knows their families without being told, and the memory
# table below was measured at their sizes. Any other checkpoint of a supported family deploys with model_family set
# (the Docker build checks it against the model's config.json) and, if it is larger, a memory_mb of its own.
REFERENCE_MODELS: Final[dict[str, Family]] = {
    MODEL_ID: "vit-gpt2",
    "Salesforce/blip-image-captioning-base": "blip",
    "microsoft/git-base-coco": "git",
    "florence-community/Florence-2-base": "florence2",
    "HuggingFaceTB/SmolVLM-256M-Instruct": "chat",
}
# Florence-2's original repositories ship remote code and a layout transformers 5 does not load natively; the
# florence-community conversions hold the same weights in the native layout.
REMOTE_CODE_MODELS: Final[dict[str, str]] = {
    f"microsoft/Florence-2-{size}": f"florence-community/Florence-2-{size}"
    for size in ("base", "large", "base-ft", "large-ft")
}


def image_target(family: Family, precision: Precision) -> ImageTarget:
    """The Dockerfile stage a model needs: only vit-gpt2 has the int8 ONNX artifact (the slim ``runtime``, no
    torch); every other family, and fp32, runs on torch (``runtime-torch``; int8 there is quantized at load)."""
    return "runtime" if family == "vit-gpt2" and precision == "int8" else "runtime-torch"


# --- function sizing (benchmark) -----------------------------------------------------------------------------
# BENCHMARKS.md (int8 ONNX Runtime, full-size model, recorded run of round 2): 0.44-0.46 CPU-s per image at batches
# of 4-16, peak RSS ~600 MB, cold start ~1.5 s. 1,769 MB is exactly one vCPU, which one thread uses fully ($12.8 per
# million images of compute, $14.0 with every request); 2,048 MB buys 0.16 vCPU that one thread cannot use ($14.8),
# and two threads at 4,096 MB finish sooner but cost more.
# Every family and precision (deploy/cdk/README.md, Memory per model family): the model's peak RSS
# (MODEL_PEAK_RSS_MB) + BATCH_HEADROOM_MB + DECODE_BUDGET_MB, rounded up to 64 MB, and at least one full vCPU.
MEMORY_MB: Final[dict[Family, dict[Precision, int]]] = {
    "vit-gpt2": {"int8": 1769, "fp32": 2624},
    "blip": {"int8": 4096, "fp32": 3840},
    "git": {"int8": 3072, "fp32": 2688},
    "florence2": {"int8": 4928, "fp32": 3776},
    "chat": {"int8": 3648, "fp32": 3648},
}
MB_PER_VCPU: Final = 1769  # Lambda allocates CPU in proportion to memory: 1 vCPU per 1,769 MB
TIMEOUT_S: Final = 120  # a cold start (~2 s measured) plus a batch of 10 at ~0.5-1 s per image, with wide headroom
ARCHITECTURE: Final[Architecture] = "x86_64"  # arm64 is 20% cheaper per GB-s ($11.7 if as fast), but unmeasured
RESERVED_CONCURRENCY: Final[int | None] = None  # None: share the account pool
PROVISIONED_CONCURRENCY: Final = 0  # 0: off (no idle cost); >0 keeps warm containers on the "live" alias

# --- SQS event source (benchmark) --------------------------------------------------------------------------
BATCH_SIZE: Final = 10  # benchmark: CPU-s per image within 4% from batch 4 to 16 (0.461-0.444); 10 needs no window
MAX_BATCHING_WINDOW_S: Final = 0  # 0: invoke as soon as messages arrive
MAX_CONCURRENCY: Final[int | None] = None  # cap on concurrent invocations from the queue (2..1000)
MAX_RECEIVE_COUNT: Final = 5  # deliveries before a message moves to the dead-letter queue
VISIBILITY_TIMEOUT_FACTOR: Final = 6  # AWS guidance: visibility timeout >= 6x the function timeout

# --- input caps passed to the core settings (benchmark) ------------------------------------------------------
# Generation options are left to the model family's defaults (vit-gpt2: 4 beams, 16 tokens) unless set.
MAX_BYTES: Final = 50 * 1024 * 1024
MAX_PIXELS: Final = 100_000_000  # the ceiling: unless max_pixels is set, the function's cap follows from its memory

# --- the pixel cap the memory affords (environment.max_pixels_for_memory; figures: docs/RELIABILITY.md, Memory) ---
# One image is decoded at a time, then reduced to at most 3.2 MP; its transient peak per declared pixel was measured
# from 1.1 B (grayscale PNG) through 5 (RGB PNG), 9-10 (RGBA, palette with transparency) to 16.6 B (WebP, which
# libwebp and Pillow each hold a copy of). JPEGs decode at a reduced DCT scale and cost far less.
DECODE_BYTES_PER_PIXEL: Final = 17
# Peak RSS of a fresh process that loads the model and captions, the larger of one image and a batch of ten (the
# SQS batch is one inference batch): deploy/cdk/README.md, Memory per model family (measure_family_memory.py).
# vit-gpt2 int8 runs ONNX Runtime (BENCHMARKS.md: 561 MB cold, batch 1); every other row runs torch.
MODEL_PEAK_RSS_MB: Final[dict[Family, dict[Precision, int]]] = {
    "vit-gpt2": {"int8": 678, "fp32": 1587},
    "blip": {"int8": 3049, "fp32": 2793},
    "git": {"int8": 2027, "fp32": 1608},
    "florence2": {"int8": 3853, "fp32": 2703},
    "chat": {"int8": 2561, "fp32": 2600},
}
BATCH_HEADROOM_MB: Final = 256  # a batch of ten reduced images at their largest (128 MB) and the source bytes read
DECODE_BUDGET_MB: Final = 779  # the default sizes' room for decoding: a 48 MP photo at DECODE_BYTES_PER_PIXEL

# --- bucket notifications ------------------------------------------------------------------------------------
WATCH_PREFIX: Final = "uploads/"
IMAGE_SUFFIXES: Final = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif")

# --- retention and alarms --------------------------------------------------------------------------------------
LOG_RETENTION_DAYS: Final = 30
ACCESS_LOG_RETENTION_DAYS: Final = 90
NONCURRENT_VERSION_RETENTION_DAYS: Final = 30
QUEUE_RETENTION_DAYS: Final = 4
DLQ_RETENTION_DAYS: Final = 14  # the maximum SQS allows: time to inspect and redrive
OLDEST_MESSAGE_AGE_ALARM_S: Final = 900  # backlog older than this means the function does not keep up

# --- container image build -------------------------------------------------------------------------------------
REPO_ROOT: Final = Path(__file__).resolve().parents[3]  # the Docker build context (contract with adapters/lambda)
DOCKERFILE: Final = "adapters/lambda/Dockerfile"  # relative to REPO_ROOT
HANDLER_CMD: Final = "imgcaption_lambda.handler.handler"
