"""Peak RSS of captioning one image with each model family: what the function's memory size must hold.

Each measurement is a fresh Python process that loads a full-size random-weight model of the family (the published
reference checkpoint's layer sizes, vocabulary and image size, from ``imgcaption.testing``), runs it in the
precision the Lambda image would (fp32, or int8: the ONNX artifact for vit-gpt2, torch's dynamic quantization at
load for the others) on one thread (a 1,769 MB function has one vCPU), captions one 1024×768 JPEG, or a batch of
them (the function captions an SQS batch as one inference batch), with the family's default generation options,
and reports its own ``ru_maxrss``: imports, weights, activations and all.

    python deploy/cdk/measure_family_memory.py /tmp/family-models               # every family, fp32 and int8
    python deploy/cdk/measure_family_memory.py /tmp/family-models blip:int8:10  # one row: a batch of 10

Model directories are built under the given directory on first use (0.5-1 GB each, in a process of their own) and
reused. Random weights never emit an end token, so every caption runs to the family's full token budget: the worst
case for memory and time. Needs the ``export`` extra (torch, transformers, onnx, onnxruntime); nothing is downloaded.

The parent process imports none of them and builds nothing: Linux carries a process's peak RSS over ``fork`` and
``exec`` (a child starts with its parent's pages), so a parent that had loaded a model would inflate every figure.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FAMILIES = ("vit-gpt2", "blip", "git", "florence2", "chat")
PRECISIONS = ("fp32", "int8")


def cpu_description() -> str:
    """The CPU model and the SIMD extensions int8 kernels use, from /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = [flag for flag in ("avx2", "avx512f", "avx512_vnni", "amx_int8") if flag in flags]
    return f"{model or 'unknown CPU'} ({', '.join(wanted) or 'no avx2'})"


def model_directory(root: Path, family: str, precision: str) -> Path:
    """The full-size random model of ``family`` (built once), or vit-gpt2's int8 ONNX artifact made from it."""
    from imgcaption.testing import FAMILY_MODEL_FACTORIES, save_random_model

    source = root / family
    if not (source / "config.json").is_file():
        if family == "vit-gpt2":
            save_random_model(source, "full")
        else:
            FAMILY_MODEL_FACTORIES[family](source, size="full")
    if family == "vit-gpt2" and precision == "int8":
        artifact = root / "vit-gpt2-onnx"
        if not (artifact / "encoder.onnx").is_file():
            from imgcaption.backends.export import save_onnx_artifact

            save_onnx_artifact(source, artifact)
        return artifact
    return source


def run_child(*arguments: str) -> tuple[dict[str, Any], int]:
    """Run this script in a fresh process; its JSON answer and its peak RSS in MB as the kernel reports it."""
    import os

    process = subprocess.Popen(  # noqa: S603 (our own interpreter and script)
        [sys.executable, __file__, *arguments], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(arguments)} failed (exit {os.waitstatus_to_exitcode(status)})")
    return json.loads(output.strip().splitlines()[-1]), usage.ru_maxrss // 1024


def measure(directory: Path, precision: str, batch: int) -> dict[str, Any]:
    """Load, caption ``batch`` images as one batch, and report this process's peak RSS (run in a fresh process)."""
    import io
    import resource

    from PIL import Image

    from imgcaption.captioner import Captioner

    started = time.perf_counter()
    captioner = Captioner.from_pretrained(str(directory), precision=precision, threads=1)  # type: ignore[arg-type]
    loaded = time.perf_counter()
    buffer = io.BytesIO()
    Image.radial_gradient("L").resize((1024, 768)).convert("RGB").save(buffer, "JPEG")
    captions = captioner.caption_many([buffer.getvalue()] * batch, batch_size=batch)
    done = time.perf_counter()
    failures = [caption for caption in captions if not hasattr(caption, "text")]
    if failures:
        raise SystemExit(f"captioning failed: {failures[0]}")
    return {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,  # KiB on Linux
        "load_s": round(loaded - started, 1),
        "caption_s": round(done - loaded, 1),
        "generation": captioner.generation.key,
    }


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        print(json.dumps(measure(Path(argv[1]), argv[2], int(argv[3]))))
        return
    if argv[:1] == ["--build"]:
        print(json.dumps({"directory": str(model_directory(Path(argv[1]), argv[2], argv[3]))}))
        return
    if not argv:
        raise SystemExit("usage: measure_family_memory.py MODELS_DIR [FAMILY:PRECISION ...]")
    root = Path(argv[0])
    rows = [_row(item) for item in argv[1:]] or [(f, p, 1) for f in FAMILIES for p in PRECISIONS]
    print(f"machine: {cpu_description()}, python {platform.python_version()}", flush=True)
    print("| family | precision | images | peak RSS (MB) | load (s) | caption (s) | generation |")
    print("|---|---|---:|---:|---:|---:|---|", flush=True)
    for family, precision, batch in rows:
        built, _ = run_child("--build", str(root), family, precision)
        result, kernel_peak_mb = run_child("--child", built["directory"], precision, str(batch))
        # the process's own figure and the kernel's (wait4) agree when the parent is small, as it is here
        peak_mb = max(result["peak_rss_mb"], kernel_peak_mb)
        cells = (family, precision, batch, peak_mb, result["load_s"], result["caption_s"])
        print("| " + " | ".join(str(cell) for cell in cells) + f" | {result['generation']} |", flush=True)


def _row(item: str) -> tuple[str, str, int]:
    """``family:precision[:images]``."""
    family, precision, *batch = item.split(":")
    return family, precision, int(batch[0]) if batch else 1


if __name__ == "__main__":
    main(sys.argv[1:])
