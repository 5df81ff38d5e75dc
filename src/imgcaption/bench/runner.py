"""Measure every mode against the baseline in the same run, interleaved, so machine drift hits both alike.

The baseline is the original system's path: the fp32 transformers model, ``generate(max_length=16, num_beams=4)``,
batch 1. Every timed call captions PIL images end to end (preprocess, decode, detokenize). Modes:

* ``baseline`` — ``model.generate`` as the seed called it (and ``generate`` greedy, for the greedy rows);
* ``fp32`` — the default exact mode: :func:`imgcaption.backends.vitgpt2_exact.decode`, same tokens as the baseline;
* ``int8`` — the pre-quantized torch artifact written by ``imgcaption optimize --backend torch``;
* ``onnx`` — int8 ONNX Runtime: the artifact ``imgcaption optimize`` writes by default, run without torch. Its
  sessions fix their thread count at load, so there is one captioner per thread count measured. Skipped, with a note,
  where ``onnxruntime`` is not installed.

``int8`` and ``onnx`` are the fast modes: each is checked against fp32 for fidelity and started cold in a fresh
process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgcaption.backends.cpu_int8 import cpu_flags, cpu_model_name
from imgcaption.bench.floors import Floors, measure_floors
from imgcaption.generation import GenerationOptions

if TYPE_CHECKING:
    from PIL import Image

    from imgcaption.captioner import Captioner

BEAMS4 = GenerationOptions()
GREEDY = GenerationOptions(num_beams=1, max_length=16)
MODES = ("baseline", "fp32", "int8", "onnx")
FAST_MODES = ("int8", "onnx")
"""The quantized modes: fidelity against fp32, a cold start each, and the Lambda model takes the faster."""
MODE_NAMES = {
    "baseline": "baseline (transformers generate)",
    "fp32": "fp32 (exact)",
    "int8": "int8 (torch)",
    "onnx": "int8 ONNX Runtime",
}
COLD_START_LABELS = {"int8": "int8 artifact", "onnx": "onnx int8 artifact"}
"""The cold-start row of each fast mode."""


@dataclass
class BenchConfig:
    model_dir: Path
    artifact_dir: Path | None = None
    onnx_artifact_dir: Path | None = None
    image_paths: Sequence[Path] = ()
    threads: Sequence[int] = (1, 2)
    repeats: int = 2
    batch_sizes: Sequence[int] = (1, 4, 8, 16)
    throughput_threads: Sequence[int] = (1, 2)
    cold_start_runs: int = 3
    fidelity_model: Path | None = None
    fidelity_images: int = 24
    progress: Callable[[str], None] = lambda _: None


@dataclass
class Timing:
    mode: str
    decoding: str
    threads: int
    seconds: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)  # baseline beams-4 time / this time, pair by pair

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p95(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def speedup(self) -> float:
        return statistics.median(self.ratios)


@dataclass
class Throughput:
    mode: str
    threads: int
    batch_size: int
    images_per_second: float
    speedup: float  # vs the baseline's batch-1 beams-4 images/s at the same thread count
    cpu_seconds_per_image: float  # this process's user+sys time: wall time on a dedicated CPU, at 1 thread


@dataclass
class ColdStart:
    label: str
    wall_seconds: list[float]
    import_seconds: list[float]
    load_seconds: list[float]
    first_caption_seconds: list[float]
    peak_rss_mb: list[float]
    to_first_caption_seconds: list[float] = field(default_factory=list)
    """From spawning the process to its first caption (``wall_seconds`` also counts the interpreter's exit)."""


@dataclass
class Fidelity:
    model: str
    mode: str  # the fast mode compared with fp32: "int8" or "onnx"
    images: int
    identical_captions: float
    token_agreement: float


@dataclass
class BenchResult:
    machine: dict[str, Any]
    config: dict[str, Any]
    latency: list[Timing]
    throughput: list[Throughput]
    cold_start: list[ColdStart]
    import_seconds: dict[str, list[float]]
    fidelity: list[Fidelity]
    exact_tokens_identical: bool
    floors: Floors | None = None
    """The onnx artifact's int8 floors on this CPU (:mod:`imgcaption.bench.floors`); None without onnxruntime."""

    def to_json(self) -> str:
        def encode(value: Any) -> Any:
            return str(value) if isinstance(value, Path) else value

        data = asdict(self)
        for timing, raw in zip(self.latency, data["latency"], strict=True):
            raw.update(p50=timing.p50, p95=timing.p95, speedup=timing.speedup)
        return json.dumps(data, indent=2, default=encode)


# ------------------------------------------------------------------------------------------------ helpers


def describe_machine() -> dict[str, Any]:
    import torch

    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {
        "cpu": cpu_model_name(),
        "cores": os.cpu_count(),
        "flags": sorted(cpu_flags()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "quantized_engine": torch.backends.quantized.engine,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # what torch's kernels actually use
        "load_average_at_start": [round(x, 2) for x in load],
        "onnxruntime": _onnxruntime_version(),
    }


def _onnxruntime_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return str(onnxruntime.__version__)


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def token_agreement(a: Any, b: Any, pad: int) -> tuple[int, int]:
    """(matching positions, compared positions) of two token sequences, the shorter padded with ``pad``."""
    left, right = list(a), list(b)
    length = max(len(left), len(right))
    left += [pad] * (length - len(left))
    right += [pad] * (length - len(right))
    return sum(x == y for x, y in zip(left, right, strict=True)), length


def load_images(paths: Sequence[Path]) -> list[Image.Image]:
    from PIL import Image

    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


def default_images() -> list[Path]:
    """The example pictures, painted from their fixed seed (the files in the repository's ``examples/``)."""
    target = Path(tempfile.mkdtemp(prefix="imgcaption-bench-"))
    from imgcaption.local.examples import write_example_images

    return sorted(write_example_images(target))


# ------------------------------------------------------------------------------------------------ the run


class _Runners:
    """One callable per (mode, options): PIL images in, token ids out, at the thread count last :meth:`use`d."""

    def __init__(self, fp32: Captioner, int8: Captioner, model: Any, onnx: dict[int, Captioner]) -> None:
        self.fp32, self.int8, self.model = fp32, int8, model
        self.onnx = onnx  # one ONNX Runtime captioner per thread count: its sessions fix it at load
        self.modes = tuple(mode for mode in MODES if mode != "onnx" or onnx)
        self.fast_modes = tuple(mode for mode in FAST_MODES if mode in self.modes)
        self.threads = 0

    def use(self, threads: int) -> None:
        """torch's intra-op threads for the torch modes, and the ONNX captioner built with as many."""
        import torch

        torch.set_num_threads(threads)
        self.threads = threads

    def _captioner(self, mode: str) -> Captioner:
        if mode == "fp32":
            return self.fp32
        if mode == "int8":
            return self.int8
        if mode == "onnx":
            return self.onnx[self.threads]
        raise ValueError(f"unknown mode {mode!r}")

    def run(self, mode: str, options: GenerationOptions, images: Sequence[Image.Image]) -> Any:
        if mode == "baseline":
            pixel_values = self.fp32.preprocess(images)
            tokens = self.model.generate(pixel_values, **options.generate_kwargs())  # the seed: no inference_mode
            self.fp32.postprocess(tokens)
            return tokens
        captioner = self._captioner(mode)
        tokens = captioner.forward(captioner.preprocess(images), options)
        captioner.postprocess(tokens)
        return tokens


def run_benchmark(config: BenchConfig) -> BenchResult:
    from imgcaption.backends.export import save_torch_artifact
    from imgcaption.backends.registry import load_model
    from imgcaption.captioner import Captioner

    say = config.progress
    paths = list(config.image_paths) or default_images()
    images = load_images(paths)
    machine = describe_machine()
    artifact = config.artifact_dir
    if artifact is None or not (artifact / "imgcaption-model.json").is_file():
        artifact = artifact or Path(tempfile.mkdtemp(prefix="imgcaption-int8-"))
        say(f"building the int8 artifact in {artifact}")
        save_torch_artifact(config.model_dir, artifact)
    can_export = _onnxruntime_version() is not None and importlib.util.find_spec("onnx") is not None
    onnx_artifact = _onnx_artifact(config) if can_export else None
    if onnx_artifact is None:
        say("onnxruntime or onnx is not installed: skipping the onnx (int8 ONNX Runtime) mode")
    loaded = load_model(str(config.model_dir))
    fp32 = Captioner(loaded)
    int8 = Captioner.from_pretrained(str(artifact), precision="int8", threads=max(config.threads))
    onnx: dict[int, Captioner] = {}
    if onnx_artifact is not None:
        for threads in sorted({*config.threads, *config.throughput_threads}):
            onnx[threads] = Captioner.from_pretrained(str(onnx_artifact), precision="int8", threads=threads)
    runners = _Runners(fp32, int8, loaded.model, onnx)
    pad = int(loaded.model.generation_config.pad_token_id or 0)

    latency: list[Timing] = []
    outputs: dict[tuple[str, str, int], Any] = {}
    for threads in config.threads:
        runners.use(threads)
        for options, label in ((BEAMS4, "beams 4"), (GREEDY, "greedy")):
            timings = {mode: Timing(mode, label, threads) for mode in runners.modes}
            baseline_b4 = Timing("baseline", "beams 4", threads)
            for repeat in range(config.repeats):
                for index, image in enumerate(images):
                    say(f"latency {label} threads={threads} repeat {repeat + 1} image {index + 1}/{len(images)}")
                    reference = None
                    if options is not BEAMS4:  # greedy rows are compared with the seed's beams-4 time too
                        started = time.perf_counter()
                        runners.run("baseline", BEAMS4, [image])
                        reference = time.perf_counter() - started
                        baseline_b4.seconds.append(reference)
                    for mode in runners.modes:
                        started = time.perf_counter()
                        tokens = runners.run(mode, options, [image])
                        elapsed = time.perf_counter() - started
                        timings[mode].seconds.append(elapsed)
                        outputs[(mode, label, index)] = tokens[0].tolist()
                    seed = reference if reference is not None else timings["baseline"].seconds[-1]
                    for mode in runners.modes:
                        timings[mode].ratios.append(seed / timings[mode].seconds[-1])
            latency.extend(timings.values())
    exact = all(
        outputs[("fp32", label, i)] == outputs[("baseline", label, i)]
        for label in ("beams 4", "greedy")
        for i in range(len(images))
    )

    throughput: list[Throughput] = []
    for threads in config.throughput_threads:
        runners.use(threads)
        base = [t for t in latency if t.mode == "baseline" and t.decoding == "beams 4" and t.threads == threads]
        base_rate = 1 / base[0].p50 if base else float("nan")
        if not base:
            started = time.perf_counter()
            runners.run("baseline", BEAMS4, images[:1])
            base_rate = 1 / (time.perf_counter() - started)
        # every (mode, batch) once per repeat, interleaved; medians, so one lucky or unlucky pass does not decide
        samples: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for repeat in range(max(1, config.repeats)):
            for batch_size in config.batch_sizes:
                batch = [images[i % len(images)] for i in range(batch_size)]
                for mode in ("fp32", *runners.fast_modes):
                    say(f"throughput {mode} batch {batch_size} threads={threads} repeat {repeat + 1}")
                    cpu_before, started = _cpu_seconds(), time.perf_counter()
                    runners.run(mode, BEAMS4, batch)
                    rate = batch_size / (time.perf_counter() - started)
                    cpu = (_cpu_seconds() - cpu_before) / batch_size
                    samples.setdefault((mode, batch_size), []).append((rate, cpu))
        for (mode, batch_size), measured in samples.items():
            rate = statistics.median(r for r, _ in measured)
            cpu = statistics.median(c for _, c in measured)
            throughput.append(Throughput(mode, threads, batch_size, rate, rate / base_rate, cpu))

    say("cold start")
    cold = measure_cold_starts(
        config.model_dir,
        artifact,
        paths[0],
        config.cold_start_runs,
        min(config.threads),
        onnx_artifact=onnx_artifact,
        more_threads=max(config.threads),
    )
    imports = measure_imports(config.cold_start_runs, include_onnxruntime=onnx_artifact is not None)
    floors = None
    if onnx_artifact is not None:
        say("int8 floors: the encoder's GEMM rate and the decoder's bytes per step")
        floors = measure_floors(onnx_artifact)

    fidelity = [_fidelity_from_outputs(outputs, len(images), pad, loaded.model_id, mode) for mode in runners.fast_modes]
    if config.fidelity_model is not None and config.fidelity_images > 0:
        say("fidelity on the trained scene captioner")
        if onnx_artifact is None:
            fidelity += scene_fidelity(config.fidelity_model, config.fidelity_images)
        else:
            from imgcaption.backends.export import save_onnx_artifact

            with tempfile.TemporaryDirectory(prefix="imgcaption-scene-onnx-") as scratch:
                say("exporting the scene captioner to a temporary onnx artifact")
                scene_onnx = save_onnx_artifact(config.fidelity_model, Path(scratch) / "onnx")
                fidelity += scene_fidelity(config.fidelity_model, config.fidelity_images, onnx_artifact=scene_onnx)

    return BenchResult(
        machine=machine,
        config={
            "model": str(config.model_dir),
            "artifact": str(artifact),
            "onnx_artifact": str(onnx_artifact) if onnx_artifact is not None else None,
            "modes": list(runners.modes),
            "images": [p.name for p in paths],
            "repeats": config.repeats,
            "threads": list(config.threads),
        },
        latency=latency,
        throughput=throughput,
        cold_start=cold,
        import_seconds=imports,
        fidelity=fidelity,
        exact_tokens_identical=exact,
        floors=floors,
    )


def _onnx_artifact(config: BenchConfig) -> Path:
    """The ONNX artifact at ``config.onnx_artifact_dir``, exported there (or to a temporary directory) if absent."""
    from imgcaption.backends.export import save_onnx_artifact

    onnx_artifact = config.onnx_artifact_dir
    if onnx_artifact is None or not (onnx_artifact / "imgcaption-model.json").is_file():
        onnx_artifact = onnx_artifact or Path(tempfile.mkdtemp(prefix="imgcaption-onnx-"))
        config.progress(f"building the int8 ONNX Runtime artifact in {onnx_artifact}")
        save_onnx_artifact(config.model_dir, onnx_artifact)
    return onnx_artifact


def _fidelity_from_outputs(
    outputs: dict[tuple[str, str, int], Any], count: int, pad: int, name: str, mode: str
) -> Fidelity:
    same = matches = total = 0
    for index in range(count):
        a, b = outputs[("fp32", "beams 4", index)], outputs[(mode, "beams 4", index)]
        same += a == b
        hit, length = token_agreement(a, b, pad)
        matches, total = matches + hit, total + length
    return Fidelity(name, mode, count, same / count, matches / total)


def scene_fidelity(model_dir: Path, count: int, *, onnx_artifact: Path | None = None) -> list[Fidelity]:
    """The fast modes against fp32 on a model whose captions mean something: the trained scene captioner.

    ``int8`` quantizes ``model_dir`` on load; ``onnx`` (only with ``onnx_artifact``, exported from ``model_dir``)
    runs that artifact.
    """
    from imgcaption.captioner import Captioner
    from imgcaption.testing.scenes import held_out_scenes

    fp32 = Captioner.from_pretrained(str(model_dir), precision="fp32")
    fast = {"int8": Captioner.from_pretrained(str(model_dir), precision="int8")}
    if onnx_artifact is not None:
        fast["onnx"] = Captioner.from_pretrained(str(onnx_artifact), precision="int8")
    scenes = [scene.image for scene in held_out_scenes(count)]
    pad = 50256
    reference = [fp32.forward(fp32.preprocess([image]), BEAMS4)[0].tolist() for image in scenes]
    results = []
    for mode, captioner in fast.items():
        same = matches = total = 0
        for image, a in zip(scenes, reference, strict=True):
            b = captioner.forward(captioner.preprocess([image]), BEAMS4)[0].tolist()
            same += a == b
            hit, length = token_agreement(a, b, pad)
            matches, total = matches + hit, total + length
        results.append(Fidelity(f"scene captioner ({model_dir.name})", mode, count, same / count, matches / total))
    return results


_COLD_SCRIPT = """
import json, sys, time
started = time.perf_counter()
from imgcaption import Captioner
imported = time.perf_counter()
captioner = Captioner.from_pretrained(sys.argv[1], precision=sys.argv[2], threads=int(sys.argv[4]))
loaded = time.perf_counter()
captioner.caption(sys.argv[3])
done = time.perf_counter()
done_at = time.time()
status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]  # this process's own peak, in kB
timings = {"import": imported - started, "load": loaded - imported, "caption": done - loaded, "done_at": done_at}
print(json.dumps({**timings, "peak_rss_mb": int(status) / 1024}))
"""


def _timed_child(args: Sequence[str]) -> tuple[float, float, str, float]:
    """(wall seconds from spawn to exit, peak RSS MB, stdout, epoch time of the spawn) of a child process.

    The rusage peak of a child is inflated by its parent's (Linux carries the pre-exec high-water mark over), so
    scripts that can print their own ``VmHWM`` should; :func:`measure_cold_starts` does.
    """
    spawned_at, started = time.time(), time.perf_counter()
    # our own interpreter running our own script: no untrusted input
    process = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # noqa: S603
    assert process.stdout is not None
    out = process.stdout.read()
    process.stdout.close()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{args} exited with {process.returncode}")
    return wall, usage.ru_maxrss / 1024, out, spawned_at


def measure_cold_starts(
    model_dir: Path,
    artifact: Path,
    image: Path,
    runs: int,
    threads: int,
    *,
    onnx_artifact: Path | None = None,
    more_threads: int = 0,
) -> list[ColdStart]:
    """A fresh process, start to first caption: the int8 artifacts (torch, ONNX) and the fp32 model, interleaved."""
    candidates: list[tuple[str, Path, str]] = [(COLD_START_LABELS["int8"], artifact, "int8")]
    if onnx_artifact is not None:
        candidates.append((COLD_START_LABELS["onnx"], onnx_artifact, "int8"))
    candidates.append(("fp32 (transformers)", model_dir, "fp32"))
    counts = {label: threads for label, _, _ in candidates}
    if onnx_artifact is not None and more_threads > threads:
        label = f"{COLD_START_LABELS['onnx']}, {more_threads} threads"
        candidates.append((label, onnx_artifact, "int8"))
        counts[label] = more_threads
    results = {label: ColdStart(label, [], [], [], [], []) for label, _, _ in candidates}
    for _ in range(runs):
        for label, directory, precision in candidates:
            wall, rss, out, spawned_at = _timed_child(
                [sys.executable, "-c", _COLD_SCRIPT, str(directory), precision, str(image), str(counts[label])]
            )
            inner = json.loads(out.strip().splitlines()[-1])
            entry = results[label]
            entry.wall_seconds.append(wall)
            entry.to_first_caption_seconds.append(inner["done_at"] - spawned_at)
            entry.peak_rss_mb.append(float(inner.get("peak_rss_mb", rss)))
            entry.import_seconds.append(inner["import"])
            entry.load_seconds.append(inner["load"])
            entry.first_caption_seconds.append(inner["caption"])
    return list(results.values())


def measure_imports(runs: int, *, include_onnxruntime: bool = True) -> dict[str, list[float]]:
    """Wall time of ``python -c 'import imgcaption'`` beside a bare interpreter and the runtimes, interleaved."""
    codes = ["pass", "import imgcaption", "import torch"]
    if include_onnxruntime:
        codes.append("import onnxruntime")
    labels = {code: "python -c pass" if code == "pass" else code for code in codes}
    times: dict[str, list[float]] = {label: [] for label in labels.values()}
    for _ in range(runs):
        for code, label in labels.items():
            wall, _, _, _ = _timed_child([sys.executable, "-c", code])
            times[label].append(wall)
    return times
