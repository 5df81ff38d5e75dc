"""Load a captioning model from a hub id (pinned revision) or a local directory, on the backend it needs.

A directory's provenance file picks the backend: an ONNX artifact runs on :mod:`.onnx_int8`, a torch int8 artifact
on :mod:`.torch_int8`, anything else on transformers. There the model's ``config.json`` names its family
(:mod:`.families`): vit-gpt2 is decoded by :mod:`.vitgpt2_exact`, the others by :mod:`.transformers_generate`.

Loading never falls back to anything: a missing or broken model is a :class:`ModelLoadError` that says which model,
what was tried, and how to point imgcaption at a local copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgcaption.backends.base import VIT_GPT2, LoadedModel, local_revision, read_provenance
from imgcaption.backends.families import FAMILIES, Family, detect_family
from imgcaption.backends.hub import hub_endpoint, hub_reachable
from imgcaption.distribution import install_hint
from imgcaption.errors import ConfigurationError, ModelLoadError
from imgcaption.generation import GenerationOptions, Precision

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


@dataclass(frozen=True, slots=True)
class ModelHeader:
    """What a model is before its weights load: the identity its captions record, its family, where it loads from.

    Read from the provenance file and ``config.json`` only, so a caption's signature can be known without the
    weights (``imgcaption backfill --skip-existing``); :func:`load_model` loads from it.
    """

    reference: str
    model_id: str
    revision: str | None
    family: Family
    provenance: dict[str, Any]
    location: str
    """The directory, or the hub id, that ``from_pretrained`` reads."""
    options: dict[str, Any] | None
    """``from_pretrained`` keywords for a hub id (revision, cache only), empty for a directory; None when the hub
    was not asked yet (the pinned default model's family is known without it)."""
    tried: str
    """Where the model was looked for, in words, for error messages."""

    @property
    def is_artifact(self) -> bool:
        """An ``imgcaption optimize`` directory (int8, vit-gpt2), which loads without transformers."""
        return bool(self.provenance.get("format"))


def read_header(reference: str, revision: str | None = None, *, local_files_only: bool = False) -> ModelHeader:
    """The :class:`ModelHeader` of ``reference`` (hub id or directory), without loading any weights.

    A directory's provenance file gives its model id and revision; a hub id is its own model id at ``revision``.
    The family is ``config.json``'s, except for an int8 artifact (vit-gpt2 only) and the pinned default model
    (a vit-gpt2 at a fixed commit), which are known without reading it, so no model runtime is needed for them.
    """
    from imgcaption.settings import DEFAULT_MODEL, DEFAULT_REVISION

    directory = Path(reference).expanduser()
    if directory.is_dir():
        provenance = read_provenance(directory)
        model_id = str(provenance.get("model_id") or directory)
        resolved_revision = local_revision(directory, provenance)
        location: str = str(directory)
        options: dict[str, Any] = {}
        tried = f"the local directory {directory}"
        if provenance.get("format"):
            return ModelHeader(
                reference, model_id, resolved_revision, FAMILIES[VIT_GPT2], provenance, location, options, tried
            )
        _require_torch_runtime(reference)  # config.json is read by transformers, which the model then runs on
    elif looks_like_path(reference):
        raise ModelLoadError(f"no model directory at {directory}. {_HINT}", source=reference)
    else:
        provenance = {}
        location = reference
        model_id = reference
        resolved_revision = revision
        if (reference, revision) == (DEFAULT_MODEL, DEFAULT_REVISION):
            return ModelHeader(reference, model_id, revision, FAMILIES[VIT_GPT2], provenance, location, None, "")
        _require_torch_runtime(reference)
        options, tried = _hub_access(reference, revision, local_files_only)
    family = _family_of(location, options, reference, tried)
    return ModelHeader(reference, model_id, resolved_revision, family, provenance, location, options, tried)


def _hub_access(reference: str, revision: str | None, local_files_only: bool) -> tuple[dict[str, Any], str]:
    """``from_pretrained`` keywords for a hub id (the cache only when asked or when the hub is unreachable), and
    where that looks, in words."""
    cache_only = local_files_only or not hub_reachable()
    tried = f"the hub id {reference!r} at revision {revision or 'main (unpinned)'}" + (
        " (cache, then download)"
        if not cache_only
        else " from the local cache only" + ("" if local_files_only else f", as {hub_endpoint()} is unreachable")
    )
    return {"revision": revision, "local_files_only": cache_only}, tried


def load_model(
    reference: str,
    revision: str | None = None,
    *,
    local_files_only: bool = False,
    dtype: Any = None,
    threads: int | None = None,
    device: str = "cpu",
) -> LoadedModel:
    """Load model, image processor and tokenizer from ``reference`` (hub id or directory), in fp32 on ``device``.

    ``threads`` is the intra-op thread count of whichever runtime the model needs (torch or ONNX Runtime).
    ``device`` is ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; int8 artifacts run on the CPU only.
    """
    header = read_header(reference, revision, local_files_only=local_files_only)
    provenance, family = header.provenance, header.family
    if header.is_artifact:
        _refuse_gpu_for_artifact(reference, device)
        directory = Path(header.location)
        if provenance.get("backend") == "onnxruntime":  # `imgcaption optimize`'s default: no torch at all
            from imgcaption.backends.onnx_int8 import load_onnx_artifact

            return load_onnx_artifact(directory, provenance, header.model_id, header.revision, threads=threads)
        _require_torch_runtime(reference, ("torch",))  # pre-quantized: torch without transformers
        _configure_torch(threads)
        from imgcaption.backends.torch_int8 import load_artifact

        return load_artifact(directory, provenance, header.model_id, header.revision)
    _require_torch_runtime(reference)
    _configure_torch(threads)
    from imgcaption.backends.devices import resolve_device

    location, options, tried = header.location, header.options, header.tried
    if options is None:
        options, tried = _hub_access(reference, revision, local_files_only)
    resolved_revision = header.revision
    used_device = resolve_device(device)
    try:
        import torch
        from transformers import AutoTokenizer, VisionEncoderDecoderModel

        tokenizer: Any = None
        model: Any
        if family.name == VIT_GPT2:
            model = VisionEncoderDecoderModel.from_pretrained(location, dtype=dtype or torch.float32, **options)
            processor = _image_processor_class().from_pretrained(location, **options)
            tokenizer = AutoTokenizer.from_pretrained(location, **options)
        else:
            model, processor = _load_family_model(family, location, options, dtype or torch.float32)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"could not load the {family.name} captioning model from {tried}: {type(exc).__name__}: {exc}. {_HINT}",
            source=reference,
        ) from exc
    if resolved_revision is None:
        commit = getattr(model.config, "_commit_hash", None)
        resolved_revision = commit if isinstance(commit, str) else None
    model.eval()
    if used_device != "cpu":
        model = model.to(used_device)
    if family.name != VIT_GPT2:
        from imgcaption.backends.transformers_generate import loaded_family_model

        return loaded_family_model(family, model, processor, header.model_id, resolved_revision, provenance)
    return LoadedModel(
        model, processor, tokenizer, header.model_id, resolved_revision, provenance, _vitgpt2_generator(model),
        device=used_device,
    )  # fmt: skip


def _family_of(location: str, options: dict[str, Any], reference: str, tried: str) -> Family:
    """The family named by the model's ``config.json``, read before any weights."""
    try:
        from transformers import PretrainedConfig
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

        config, _ = PretrainedConfig.get_config_dict(location, **options)
    except Exception as exc:
        raise ModelLoadError(
            f"could not read the model's config.json from {tried}: {type(exc).__name__}: {exc}. {_HINT}",
            source=reference,
        ) from exc
    return detect_family(config, reference, tuple(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES))


def _load_family_model(family: Family, location: str, options: dict[str, Any], dtype: Any) -> tuple[Any, Any]:
    """A generate-family model (its transformers class) and its own processor (``AutoProcessor``)."""
    import transformers

    processor = transformers.AutoProcessor.from_pretrained(location, **options)  # type: ignore[no-untyped-call]
    if family.prompt == "instruction" and not getattr(processor, "chat_template", None):
        raise ModelLoadError(
            f"{location} is an image-text-to-text model whose processor has no chat template, so imgcaption "
            "cannot give it an instruction",
            source=location,
        )
    model_class = getattr(transformers, family.model_class)
    return model_class.from_pretrained(location, dtype=dtype, **options), processor


def _vitgpt2_generator(model: Any) -> Any:
    """The exact decoder on the CPU in fp32 (its reference); transformers ``generate`` anywhere else."""
    from functools import partial

    from imgcaption.backends.vitgpt2_exact import decode

    if str(model.device) == "cpu" and str(model.dtype) == "torch.float32":
        return partial(decode, model)
    return partial(_generate_on_device, model)


def _generate_on_device(model: Any, pixel_values: Any, options: GenerationOptions) -> Any:
    import torch

    with torch.inference_mode():
        pixels = pixel_values.to(model.device, model.dtype)
        return model.generate(pixels, **options.generate_kwargs()).cpu()


def _refuse_gpu_for_artifact(reference: str, device: str) -> None:
    if device not in ("auto", "cpu"):
        raise ConfigurationError(
            f"{reference} is an int8 artifact, which runs on the CPU only; use --device cpu (IMGCAPTION_DEVICE=cpu) "
            "or point at the fp32 model directory to run it on a GPU"
        )


def own_precision(provenance: dict[str, Any]) -> Precision:
    """The precision a model directory already has: ``int8`` for an ``imgcaption optimize`` artifact, else ``fp32``."""
    return "int8" if provenance.get("precision") == "int8" else "fp32"


def loaded_precision(loaded: LoadedModel) -> Precision:
    """The precision a loaded model already has: ``int8`` for an ``imgcaption optimize`` artifact, else ``fp32``."""
    return own_precision(loaded.provenance)


def precision_on(provenance: dict[str, Any], device: str) -> Precision:
    """The precision used when none is asked for: an artifact's own, fp16/bf16 on a GPU (``device`` resolved),
    else fp32."""
    have = own_precision(provenance)
    if have == "fp32" and device != "cpu":
        from imgcaption.backends.devices import gpu_precision

        return gpu_precision(device)
    return have


def default_precision(loaded: LoadedModel) -> Precision:
    """The precision used when none is asked for: an artifact's own, fp16/bf16 on a GPU, else fp32."""
    return precision_on(loaded.provenance, loaded.device)


def prepare_for_precision(loaded: LoadedModel, precision: Precision, *, owned: bool = False) -> LoadedModel:
    """The model computing in ``precision``; a pre-quantized artifact is used as it is.

    int8 runs on the CPU (the vit-gpt2 int8 runtime, or ``quantize_dynamic`` of another family's Linear layers);
    fp16 and bf16 run on a GPU. ``owned``: nothing else holds ``loaded`` (it was loaded for this), so another family's
    model may be quantized in place rather than copied.
    """
    have = loaded_precision(loaded)
    if have == precision:
        return loaded
    if have != "fp32":
        raise ConfigurationError(
            f"{loaded.model_id} was loaded from a pre-quantized {have} artifact and cannot compute in {precision}; "
            f"use precision={have!r} (IMGCAPTION_PRECISION={have}) or point at the fp32 model directory"
        )
    if precision == "int8":
        if loaded.device != "cpu":
            raise ConfigurationError(
                f"int8 runs on the CPU and {loaded.model_id} is on {loaded.device}: use --device cpu for int8, "
                "or fp16/bf16 on the GPU"
            )
        if loaded.family == VIT_GPT2:
            from imgcaption.backends.torch_int8 import int8_from_loaded

            return int8_from_loaded(loaded)
        from imgcaption.backends.transformers_generate import int8_dynamic

        return int8_dynamic(loaded, FAMILIES[loaded.family], in_place=owned)
    if loaded.device == "cpu":
        raise ConfigurationError(
            f"{precision} is a GPU precision and {loaded.model_id} is on the CPU: use fp32 or int8 there, or "
            "--device cuda / mps"
        )
    return cast_precision(loaded, precision)


def cast_precision(loaded: LoadedModel, precision: Precision) -> LoadedModel:
    """The model's weights in fp16 or bf16 on whatever device it is on (``prepare_for_precision`` keeps this to
    GPUs), its generator following: vit-gpt2's exact decoder is fp32-only, so it uses ``generate`` there."""
    import dataclasses

    from imgcaption.backends.devices import torch_dtype

    model = loaded.model.to(torch_dtype(precision))
    if loaded.family == VIT_GPT2:
        return dataclasses.replace(loaded, model=model, generate_ids=_vitgpt2_generator(model))
    from imgcaption.backends.transformers_generate import with_model

    return with_model(loaded, FAMILIES[loaded.family], model)
