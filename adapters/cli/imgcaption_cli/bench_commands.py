"""``imgcaption bench`` (every mode against the baseline), ``imgcaption bench-family`` (a model family's modes against
its own ``generate``) and ``imgcaption optimize`` (save an int8 artifact)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click

from imgcaption.backends.cpu_int8 import INT8_TARGETS
from imgcaption_cli.options import UsageFailure, prompt_option

images_option = click.option(
    "--image",
    "images",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Input image (repeatable); default: the examples/ pictures.",
)
"""The pictures both benchmarks caption: ``bench`` and ``bench-family``."""


@click.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--backend",
    type=click.Choice(["onnx", "torch"]),
    default="onnx",
    show_default=True,
    help="onnx: ONNX Runtime graphs, runs without torch (fastest start, least memory); torch: int8 torch weights.",
)
@click.option(
    "--int8-target",
    type=click.Choice(["auto", *INT8_TARGETS]),
    default="auto",
    show_default=True,
    help="The CPUs the onnx artifact is for: avx2 (x86 without VNNI: 7-bit weights, safe on any x86), vnni (x86 "
    "with AVX-512 VNNI, AVX-VNNI or AMX) or arm (Graviton): full 8-bit weights. auto: this machine's.",
)
def optimize(model_dir: Path, out_dir: Path, backend: str, int8_target: str) -> None:
    """Quantize the fp32 vit-gpt2 model in MODEL_DIR to an int8 artifact in OUT_DIR that loads fast.

    Load it with precision int8 (IMGCAPTION_PRECISION=int8); this is what the Docker image bakes in. Models of the
    other families have no artifact: --precision int8 quantizes them when they load.
    """
    from imgcaption.errors import ConfigurationError, ImgCaptionError, ModelLoadError

    _refuse_other_families(model_dir)
    if backend != "onnx" and int8_target != "auto":
        raise UsageFailure("--int8-target applies to --backend onnx (torch's int8 always uses 7-bit weights on x86)")
    try:
        if backend == "onnx":
            from imgcaption.backends.cpu_int8 import Int8Target
            from imgcaption.backends.export import save_onnx_artifact

            chosen = None if int8_target == "auto" else cast("Int8Target", int8_target)
            target = save_onnx_artifact(model_dir, out_dir, int8_target=chosen)
        else:
            from imgcaption.backends.export import save_torch_artifact

            target = save_torch_artifact(model_dir, out_dir)
    except (ConfigurationError, ModelLoadError) as exc:  # the model or the installation, not a failed export
        raise UsageFailure(exc.message) from exc
    except ImgCaptionError as exc:
        raise click.ClickException(exc.message) from exc
    size = sum(f.stat().st_size for f in target.iterdir() if f.is_file()) / 1e6
    click.echo(f"wrote an int8 {backend} artifact to {target} ({size:.0f} MB); load it with precision int8")


def _refuse_other_families(model_dir: Path) -> None:
    """Exit 2 before any weights load when MODEL_DIR's config.json names a family the artifacts cannot hold."""
    from imgcaption.backends.base import VIT_GPT2
    from imgcaption.backends.registry import read_header
    from imgcaption.errors import ModelLoadError

    try:
        family = read_header(str(model_dir)).family
    except ModelLoadError as exc:
        raise UsageFailure(exc.message) from exc
    if family.name != VIT_GPT2:
        raise UsageFailure(
            f"{model_dir} is a {family.name} model ({family.model_class}), and `imgcaption optimize` builds int8 "
            f"artifacts of {VIT_GPT2} models only. Run the {family.name} model as it is in int8: --precision int8 "
            f"(IMGCAPTION_PRECISION=int8) quantizes its Linear layers when it loads, e.g. "
            f"`imgcaption caption --model {model_dir} --precision int8 PHOTOS`."
        )


@click.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--artifact", type=click.Path(file_okay=False, path_type=Path), help="torch int8 artifact (built if absent)."
)
@click.option(
    "--onnx-artifact",
    type=click.Path(file_okay=False, path_type=Path),
    help="int8 ONNX Runtime artifact (built if absent); the onnx mode is skipped without onnxruntime.",
)
@images_option
@click.option("--threads", "threads", multiple=True, type=int, default=(1, 2), show_default=True)
@click.option("--repeats", default=2, show_default=True, help="Passes over the images for latency.")
@click.option("--batch-size", "batch_sizes", multiple=True, type=int, default=(1, 4, 8, 16), show_default=True)
@click.option("--cold-runs", default=3, show_default=True, help="Fresh processes per cold-start measurement.")
@click.option(
    "--fidelity-model",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A trained model for int8 fidelity (default: the bundled scene captioner).",
)
@click.option("--fidelity-images", default=24, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write raw JSON.")
@click.option(
    "--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report here."
)
def bench(
    model_dir: Path,
    artifact: Path | None,
    onnx_artifact: Path | None,
    images: tuple[Path, ...],
    threads: tuple[int, ...],
    repeats: int,
    batch_sizes: tuple[int, ...],
    cold_runs: int,
    fidelity_model: Path | None,
    fidelity_images: int,
    json_path: Path | None,
    markdown_path: Path | None,
) -> None:
    """Benchmark fp32 (exact), int8 (torch) and int8 ONNX Runtime against the baseline on MODEL_DIR; print markdown.

    Use the full-size model for meaningful numbers (``save_random_model(DIR, "full")``).
    """
    from imgcaption.bench.report import render
    from imgcaption.bench.runner import BenchConfig, run_benchmark

    if fidelity_model is None:
        from imgcaption.testing.scene_model import SCENE_CAPTIONER_DIR

        fidelity_model = SCENE_CAPTIONER_DIR if (SCENE_CAPTIONER_DIR / "model.safetensors").is_file() else None
    config = BenchConfig(
        model_dir=model_dir,
        artifact_dir=artifact,
        onnx_artifact_dir=onnx_artifact,
        image_paths=images,
        threads=threads,
        repeats=repeats,
        batch_sizes=batch_sizes,
        throughput_threads=threads,
        cold_start_runs=cold_runs,
        fidelity_model=fidelity_model,
        fidelity_images=fidelity_images,
        progress=lambda message: click.echo(message, err=True),
    )
    result = run_benchmark(config)
    report = render(result)
    if json_path is not None:
        json_path.write_text(result.to_json())
    if markdown_path is not None:
        markdown_path.write_text(report)
    click.echo(report)


@click.command("bench-family")
@click.argument("model_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@images_option
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="torch intra-op threads.")
@click.option("--repeats", type=click.IntRange(1), default=3, show_default=True, help="Timed passes over the images.")
@click.option("--beams", type=click.IntRange(1, 16), default=None, help="[default: the family's]")
@click.option("--max-new-tokens", type=click.IntRange(1, 255), default=None, help="[default: the family's]")
@prompt_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write raw JSON.")
@click.option(
    "--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the table here."
)
def bench_family(
    model_dirs: tuple[Path, ...],
    images: tuple[Path, ...],
    threads: int,
    repeats: int,
    beams: int | None,
    max_new_tokens: int | None,
    prompt: str | None,
    json_path: Path | None,
    markdown_path: Path | None,
) -> None:
    """Seconds per image of imgcaption fp32 and int8 against each model's own generate call (its processor and
    model.generate, same options), interleaved, with token agreement; one markdown row per MODEL_DIR (any family)."""
    import json

    from imgcaption.bench.families import FamilyBenchConfig, render_family_section, run_family_benchmark
    from imgcaption.errors import ImgCaptionError

    results = []
    for model_dir in model_dirs:
        config = FamilyBenchConfig(
            model_dir=model_dir,
            image_paths=images,
            threads=threads,
            repeats=repeats,
            num_beams=beams,
            max_new_tokens=max_new_tokens,
            prompt=prompt,
            progress=lambda message: click.echo(message, err=True),
        )
        try:
            results.append(run_family_benchmark(config))
        except ImgCaptionError as exc:  # a model that will not load, options its family refuses
            raise UsageFailure(f"{model_dir}: {exc.message}") from exc
    report = render_family_section(results)
    if json_path is not None:
        json_path.write_text(json.dumps([json.loads(result.to_json()) for result in results], indent=2))
    if markdown_path is not None:
        markdown_path.write_text(report)
    click.echo(report)
