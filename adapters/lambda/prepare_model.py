"""Build-time step of the Lambda image: turn the downloaded model into what the chosen runtime stage runs.

Run by the Dockerfile's ``model`` stage (``python prepare_model.py SOURCE TARGET PRECISION [FAMILY]``), after the
download. The model's family comes from its ``config.json``, read by imgcaption's own family detection, and with the
precision it picks the runtime stage:

* vit-gpt2 in int8 → ``runtime``, the slim stage: the model is exported to the int8 ONNX artifact
  (what ``imgcaption optimize`` does), which runs on ONNX Runtime without torch or transformers;
* everything else (vit-gpt2 in fp32; BLIP, GIT, Florence-2 and chat models in fp32 or int8) → ``runtime-torch``:
  the model stays as downloaded, loaded once here to prove it runs on this transformers without remote code; int8
  there is torch's dynamic quantization of the linear layers, applied at load.

The int8 weights are quantized for the architecture the image is built for (BuildKit's ``TARGETARCH``): 7-bit for
``amd64``, as a Lambda x86 host may lack VNNI, full 8-bit for ``arm64`` (Graviton's dot-product instructions).

The stage's name is written next to the model (``imgcaption-image-stage``), and each runtime stage refuses to
build around a model prepared for the other. ``FAMILY``, when given (the CDK passes the family it sized the function
for), must be the family the config names.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from imgcaption.backends.cpu_int8 import Int8Target

Stage = Literal["runtime", "runtime-torch"]

ONNX_STAGE: Stage = "runtime"
TORCH_STAGE: Stage = "runtime-torch"
STAGE_FILE = "imgcaption-image-stage"
PRECISIONS = ("fp32", "int8")


def image_stage(family: str, precision: str) -> Stage:
    """The runtime stage a model of ``family`` needs in ``precision``: only vit-gpt2 has the int8 ONNX artifact."""
    from imgcaption.backends.base import VIT_GPT2

    if precision not in PRECISIONS:
        raise SystemExit(f"PRECISION must be one of {', '.join(PRECISIONS)} on Lambda (a CPU); got {precision!r}")
    return ONNX_STAGE if family == VIT_GPT2 and precision == "int8" else TORCH_STAGE


def int8_target_for(architecture: str | None) -> Int8Target:
    """The ``--int8-target`` of an image built for BuildKit's ``TARGETARCH`` (x86 when it is not set)."""
    return "arm" if architecture == "arm64" else "avx2"


def model_family(source: Path) -> str:
    """The family ``source/config.json`` names, as the core detects it; a clear error for a model it cannot run."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    from imgcaption.backends.families import detect_family
    from imgcaption.errors import ModelLoadError

    config = json.loads((source / "config.json").read_text())
    try:
        return detect_family(config, str(source), tuple(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)).name
    except ModelLoadError as exc:
        raise SystemExit(str(exc)) from exc


def prepare(source: Path, target: Path, precision: str, expected_family: str = "") -> Stage:
    """Move or export the model from ``source`` to ``target`` for its stage; returns the stage's name."""
    family = model_family(source)
    if expected_family and expected_family != family:
        raise SystemExit(
            f"MODEL_FAMILY is {expected_family!r}, but the downloaded config.json names a {family} model: "
            f"set the deployment's model_family to {family!r} (its memory and stage follow from it)"
        )
    stage = image_stage(family, precision)
    if stage == ONNX_STAGE:
        from imgcaption.backends.export import save_onnx_artifact

        save_onnx_artifact(source, target, int8_target=int8_target_for(os.environ.get("TARGETARCH")))
        shutil.rmtree(source)
    else:
        from imgcaption.backends.registry import load_model
        from imgcaption.errors import ModelLoadError

        try:
            load_model(str(source), local_files_only=True)
        except ModelLoadError as exc:
            raise SystemExit(f"the {family} model does not load: {exc}") from exc
        shutil.move(source, target)
    (target / STAGE_FILE).write_text(stage + "\n")
    print(f"{family} model in {precision}: prepared for the {stage} stage")
    return stage


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        raise SystemExit("usage: prepare_model.py SOURCE_DIR TARGET_DIR PRECISION [FAMILY]")
    prepare(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], *sys.argv[4:])
