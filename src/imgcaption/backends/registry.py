"""Load a captioning model from a hub id (pinned revision) or a local directory, on the backend it needs.

A directory's provenance file picks the backend: an ONNX artifact runs on :mod:`.onnx_int8`, a torch int8 artifact
on :mod:`.torch_int8`, anything else on transformers (decoded by :mod:`.vitgpt2_exact`).

Loading never falls back to anything: a missing or broken model is a :class:`ModelLoadError` that says which model,
what was tried, and how to point imgcaption at a local copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgcaption.backends.base import LoadedModel, local_revision, read_provenance
from imgcaption.backends.hub import hub_endpoint, hub_reachable
from imgcaption.distribution import install_hint
from imgcaption.errors import ConfigurationError, ModelLoadError
from imgcaption.generation import Precision

_HINT = (
    "Point IMGCAPTION_MODEL (or --model) at a local model directory, e.g. one made with "
    "`huggingface-cli download nlpconnect/vit-gpt2-image-captioning --local-dir DIR` on a machine with network."
)


def looks_like_path(reference: str) -> bool:
    return reference.startswith(("/", "./", "../", "~", ".\\")) or Path(reference).expanduser().exists()


def _image_processor_class() -> Any:
    """``ViTImageProcessor``; without torchvision transformers 5 uses its Pillow twin, so ask for that directly."""
    import transformers

    return getattr(transformers, "ViTImageProcessorPil", None) or transformers.ViTImageProcessor


def _require_torch_runtime(reference: str, modules: tuple[str, ...] = ("torch", "transformers")) -> None:
    """Fail with the extra to install when a model needs torch (and transformers) and they are missing."""
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelLoadError(
            f"{reference} runs on {' and '.join(modules)}, and {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed: {install_hint('torch')} "
            "(or run an int8 ONNX artifact from `imgcaption optimize` with only the `onnx` extra)",
            source=reference,
        )


def _configure_torch(threads: int | None) -> None:
    if threads is not None:
        from imgcaption.backends.threads import configure_torch_threads

        configure_torch_threads(threads)


def load_model(
    reference: str,
    revision: str | None = None,
    *,
    local_files_only: bool = False,
    dtype: Any = None,
    threads: int | None = None,
) -> LoadedModel:
    """Load model, image processor and tokenizer from ``reference`` (hub id or directory).

    ``threads`` is the intra-op thread count of whichever runtime the model needs (torch or ONNX Runtime).
    """
    directory = Path(reference).expanduser()
    if directory.is_dir():
        provenance = read_provenance(directory)
        if provenance.get("backend") == "onnxruntime":  # `imgcaption optimize`'s default: no torch at all
            from imgcaption.backends.onnx_int8 import load_onnx_artifact

            return load_onnx_artifact(
                directory,
                provenance,
                str(provenance.get("model_id") or directory),
                local_revision(directory, provenance),
                threads=threads,
            )
        is_torch_artifact = bool(provenance.get("format"))  # pre-quantized: torch without transformers
        _require_torch_runtime(reference, ("torch",) if is_torch_artifact else ("torch", "transformers"))
        _configure_torch(threads)
        if is_torch_artifact:
            from imgcaption.backends.torch_int8 import load_artifact

            return load_artifact(
                directory,
                provenance,
                str(provenance.get("model_id") or directory),
                local_revision(directory, provenance),
            )
        location: str = str(directory)
        options: dict[str, Any] = {}
        model_id = str(provenance.get("model_id") or directory)
        resolved_revision = local_revision(directory, provenance)
        tried = f"the local directory {directory}"
    elif looks_like_path(reference):
        raise ModelLoadError(f"no model directory at {directory}. {_HINT}", source=reference)
    else:
        _require_torch_runtime(reference)
        _configure_torch(threads)
        provenance = {}
        location = reference
        cache_only = local_files_only or not hub_reachable()
        options = {"revision": revision, "local_files_only": cache_only}
        model_id = reference
        resolved_revision = revision
        tried = f"the hub id {reference!r} at revision {revision or 'main (unpinned)'}" + (
            " (cache, then download)"
            if not cache_only
            else " from the local cache only" + ("" if local_files_only else f", as {hub_endpoint()} is unreachable")
        )
    try:
        import torch
        from transformers import AutoTokenizer, VisionEncoderDecoderModel

        processor_class = _image_processor_class()
        model = VisionEncoderDecoderModel.from_pretrained(location, dtype=dtype or torch.float32, **options)
        processor = processor_class.from_pretrained(location, **options)
        tokenizer = AutoTokenizer.from_pretrained(location, **options)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"could not load the captioning model from {tried}: {type(exc).__name__}: {exc}. {_HINT}",
            source=reference,
        ) from exc
    if resolved_revision is None:
        commit = getattr(model.config, "_commit_hash", None)
        resolved_revision = commit if isinstance(commit, str) else None
    model.eval()  # type: ignore[no-untyped-call]
    from functools import partial

    from imgcaption.backends.vitgpt2_exact import decode

    return LoadedModel(model, processor, tokenizer, model_id, resolved_revision, provenance, partial(decode, model))


def loaded_precision(loaded: LoadedModel) -> Precision:
    """The precision a loaded model already has: ``int8`` for an ``imgcaption optimize`` artifact, else ``fp32``."""
    return "int8" if loaded.provenance.get("precision") == "int8" else "fp32"


def prepare_for_precision(loaded: LoadedModel, precision: Precision) -> LoadedModel:
    """The model computing in ``precision``; a pre-quantized artifact is used as it is."""
    have = loaded_precision(loaded)
    if have == precision:
        return loaded
    if have != "fp32":
        raise ConfigurationError(
            f"{loaded.model_id} was loaded from a pre-quantized {have} artifact and cannot compute in {precision}; "
            f"use precision={have!r} (IMGCAPTION_PRECISION={have}) or point at the fp32 model directory"
        )
    if precision == "int8":
        from imgcaption.backends.torch_int8 import int8_from_loaded

        return int8_from_loaded(loaded)
    raise ConfigurationError(f"precision {precision!r} is not available in this version; use fp32 or int8")
