"""The :class:`Captioner`: images in, :class:`~imgcaption.results.Caption` results out.

Inference keeps the three stages of a transformers pipeline visible — :meth:`Captioner.preprocess` (pixels to
tensor), :meth:`Captioner.forward` (``generate``) and :meth:`Captioner.postprocess` (tokens to text) — so a faster
backend replaces ``forward`` only. Batching, error isolation and provenance live here, once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgcaption.errors import CaptioningError, ConfigurationError, ImgCaptionError
from imgcaption.generation import GenerationOptions, Precision
from imgcaption.images import ImageInput, LoadedImage, describe_source, load_image
from imgcaption.ports import CaptionSignature
from imgcaption.results import Caption, CaptionFailure
from imgcaption.settings import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, Settings

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    Tensor = torch.Tensor | np.ndarray

    from imgcaption.backends.base import LoadedModel

logger = logging.getLogger(__name__)


def failure_from_error(
    error: BaseException,
    source: str,
    *,
    model: str,
    revision: str | None = None,
    precision: Precision = "fp32",
    generation: GenerationOptions | None = None,
    sha256: str | None = None,
) -> CaptionFailure:
    """Record an error as a result, so every input ends as exactly one outcome."""
    message = error.message if isinstance(error, ImgCaptionError) else str(error) or repr(error)
    retryable = error.retryable if isinstance(error, ImgCaptionError) else False
    return CaptionFailure(
        source=source,
        model=model,
        revision=revision,
        precision=precision,
        generation=generation or GenerationOptions(),
        sha256=sha256,
        error_type=type(error).__name__,
        message=message,
        retryable=retryable,
    )


class Captioner:
    """A loaded captioning model with its generation defaults. Thread-compatible: decode in threads, infer in one."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        generation: GenerationOptions | None = None,
        precision: Precision | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        threads: int | None = None,
    ) -> None:
        self._loaded = loaded
        self._generate_ids = loaded.generate_ids
        self.model_id = loaded.model_id
        self.revision = loaded.revision
        if precision is None:  # the model's own: int8 for an `imgcaption optimize` artifact, else fp32
            from imgcaption.backends.registry import loaded_precision

            precision = loaded_precision(loaded)
        self.precision: Precision = precision
        self.family = loaded.family
        self.device = loaded.device
        self.generation = loaded.options_for(generation or loaded.default_generation)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.threads = threads

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_pretrained(
        cls,
        model: str | None = None,
        revision: str | None = None,
        *,
        generation: GenerationOptions | None = None,
        precision: Precision | None = None,
        prompt: str | None = None,
        device: str | None = None,
        threads: int | None = None,
        max_bytes: int | None = None,
        max_pixels: int | None = None,
        local_files_only: bool | None = None,
        settings: Settings | None = None,
    ) -> Captioner:
        """Load from a hub id (revision pinned for the default model) or a local directory.

        Arguments left as ``None`` come from :class:`~imgcaption.settings.Settings` (``IMGCAPTION_*``). A precision
        set nowhere is the model's own: ``int8`` for an ``imgcaption optimize`` artifact, fp16 on a GPU (bf16 where
        supported), else ``fp32``. Generation options set nowhere are the model family's defaults; ``prompt`` is
        the caption prefix, task token or instruction of the families that take one (a ConfigurationError for
        the others). ``device`` is ``auto`` (CUDA, then MPS, then the CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        """
        from imgcaption.backends.registry import default_precision, load_model
        from imgcaption.backends.threads import available_cpus

        settings = settings or Settings()
        request = _Request.of(settings, model, revision, precision, local_files_only, device)
        used_threads = threads or settings.threads or available_cpus()
        started = time.perf_counter()
        loaded = load_model(
            request.reference,
            request.revision,
            local_files_only=request.local_files_only,
            threads=used_threads,
            device=request.device,
        )
        chosen_precision = request.precision or default_precision(loaded)
        loaded = _apply_precision(loaded, chosen_precision)
        options = _options(loaded.default_generation, settings, generation, prompt)
        logger.info(
            "loaded %s@%s (%s model, %s on %s) in %.2fs with %d threads",
            loaded.model_id,
            loaded.revision,
            loaded.family,
            chosen_precision,
            loaded.device,
            time.perf_counter() - started,
            used_threads,
        )
        return cls(
            loaded,
            generation=options,
            precision=chosen_precision,
            max_bytes=max_bytes or settings.max_bytes,
            max_pixels=max_pixels or settings.max_pixels,
            threads=used_threads,
        )

    # ---------------------------------------------------------------- public API

    @property
    def signature(self) -> CaptionSignature:
        """What identifies captions made by this captioner with its default options."""
        return CaptionSignature(self.model_id, self.revision, self.precision, self.generation)

    def load(self, item: ImageInput, *, source: str | None = None) -> LoadedImage:
        """Decode one input with this captioner's caps. Safe to call from worker threads."""
        return load_image(item, source=source, max_bytes=self.max_bytes, max_pixels=self.max_pixels)

    def caption(
        self,
        image: ImageInput,
        *,
        source: str | None = None,
        generation: GenerationOptions | None = None,
        prompt: str | None = None,
    ) -> Caption:
        """Caption one image; raises the :class:`~imgcaption.errors.ImgCaptionError` that stopped it, with its cause.

        ``prompt`` replaces the prompt of ``generation`` (default: this captioner's options).
        """
        name = describe_source(image, source)
        options = self.options(generation, prompt=prompt)
        started = time.perf_counter()
        loaded = self.load(image, source=name)
        try:
            (text,) = self._texts([loaded.image], options)
        except Exception as exc:
            raise CaptioningError(f"inference failed: {type(exc).__name__}: {exc}", source=name) from exc
        return self._caption(loaded, text, options, (time.perf_counter() - started) * 1000)

    def caption_many(
        self,
        images: Iterable[ImageInput],
        *,
        batch_size: int = 8,
        generation: GenerationOptions | None = None,
        sources: Sequence[str | None] | None = None,
        prompt: str | None = None,
    ) -> list[Caption | CaptionFailure]:
        """Caption many inputs in batches. Order is kept; a bad input becomes a failure for that item only."""
        generation = self.options(generation, prompt=prompt)
        items = list(images)
        names = list(sources) if sources is not None else [None] * len(items)
        if len(names) != len(items):
            raise ConfigurationError(f"got {len(items)} images but {len(names)} sources")
        results: list[Caption | CaptionFailure] = []
        for start in range(0, len(items), max(1, batch_size)):
            chunk = items[start : start + batch_size]
            decoded = [
                self._timed_load(item, name)
                for item, name in zip(chunk, names[start : start + batch_size], strict=True)
            ]
            results.extend(self.caption_decoded(decoded, generation=generation))
        return results

    def caption_decoded(
        self,
        decoded: Sequence[tuple[LoadedImage, float] | CaptionFailure],
        *,
        generation: GenerationOptions | None = None,
    ) -> list[Caption | CaptionFailure]:
        """Caption images already decoded (with their decode time in ms); failures pass through in place.

        This is the pipeline's entry point: it decodes in background threads and hands batches here.
        """
        options = self.options(generation)
        ready = [entry for entry in decoded if not isinstance(entry, CaptionFailure)]
        texts: dict[int, str | BaseException] = {}
        infer_ms = 0.0
        if ready:
            started = time.perf_counter()
            batch = [loaded.image for loaded, _ in ready]
            texts = dict(enumerate(self._texts_isolating_failures(batch, options)))
            infer_ms = (time.perf_counter() - started) * 1000 / len(ready)
        results: list[Caption | CaptionFailure] = []
        position = 0
        for entry in decoded:
            if isinstance(entry, CaptionFailure):
                results.append(entry)
                continue
            loaded, decode_ms = entry
            text = texts[position]
            position += 1
            if isinstance(text, BaseException):
                results.append(self.failure(text, loaded.source, sha256=loaded.sha256, generation=options))
            else:
                results.append(self._caption(loaded, text, options, decode_ms + infer_ms))
        return results

    def failure(
        self,
        error: BaseException,
        source: str,
        *,
        sha256: str | None = None,
        generation: GenerationOptions | None = None,
    ) -> CaptionFailure:
        """A :class:`CaptionFailure` with this captioner's provenance."""
        return failure_from_error(
            error,
            source,
            model=self.model_id,
            revision=self.revision,
            precision=self.precision,
            generation=generation or self.generation,
            sha256=sha256,
        )

    def options(self, generation: GenerationOptions | None = None, *, prompt: str | None = None) -> GenerationOptions:
        """The options a caption is made with: ``generation`` (default: mine) with ``prompt``, checked by the family.

        Raises :class:`~imgcaption.errors.ConfigurationError` for options the model family cannot honour.
        """
        if generation is None and prompt is None:
            return self.generation
        options = generation or self.generation
        if prompt is not None:
            options = options.with_overrides(prompt=prompt)
        return self._loaded.options_for(options)

    # ---------------------------------------------------------------- the three stages

    def preprocess(self, images: Sequence[Image.Image]) -> Tensor:
        """RGB images to the model's inputs: for vit-gpt2 the normalized 224×224 pixels (a torch tensor or, for
        ONNX, an array); for the families that take a prompt, what their processor needs to run with it."""
        inputs: Tensor = self._loaded.inputs_for(images)
        return inputs

    def forward(self, pixel_values: Tensor, generation: GenerationOptions) -> Tensor:
        """Token ids for a batch of inputs, from the backend that loaded the model."""
        ids: Tensor = self._generate_ids(pixel_values, generation)
        return ids

    def postprocess(self, token_ids: Tensor) -> list[str]:
        """Token ids to captions, as the model family's processor decodes them."""
        return self._loaded.texts_of(token_ids)

    # ---------------------------------------------------------------- internals

    def _caption(self, loaded: LoadedImage, text: str, options: GenerationOptions, elapsed_ms: float) -> Caption:
        return Caption(
            text=text,
            source=loaded.source,
            model=self.model_id,
            revision=self.revision,
            precision=self.precision,
            generation=options,
            width=loaded.width,
            height=loaded.height,
            sha256=loaded.sha256,
            elapsed_ms=round(elapsed_ms, 3),
        )

    def _timed_load(self, item: ImageInput, source: str | None) -> tuple[LoadedImage, float] | CaptionFailure:
        name = describe_source(item, source)
        started = time.perf_counter()
        try:
            loaded = self.load(item, source=name)
        except ImgCaptionError as exc:
            return self.failure(exc, name)
        return loaded, (time.perf_counter() - started) * 1000

    def _texts(self, images: Sequence[Image.Image], options: GenerationOptions) -> list[str]:
        return self.postprocess(self.forward(self.preprocess(images), options))

    def _texts_isolating_failures(
        self, images: Sequence[Image.Image], options: GenerationOptions
    ) -> list[str | BaseException]:
        """Caption a batch; if the batch fails, retry one by one so only the culprit fails."""
        try:
            return list(self._texts(images, options))
        except Exception as batch_error:
            if len(images) == 1:
                logger.exception("captioning failed")
                return [CaptioningError(f"inference failed: {type(batch_error).__name__}: {batch_error}")]
            logger.warning("batch of %d failed (%s); retrying images one by one", len(images), batch_error)
        outcomes: list[str | BaseException] = []
        for image in images:
            outcomes.extend(self._texts_isolating_failures([image], options))
        return outcomes


def caption_signature(
    model: str | None = None,
    revision: str | None = None,
    *,
    generation: GenerationOptions | None = None,
    precision: Precision | None = None,
    prompt: str | None = None,
    device: str | None = None,
    local_files_only: bool | None = None,
    settings: Settings | None = None,
) -> CaptionSignature:
    """The :attr:`Captioner.signature` that :meth:`Captioner.from_pretrained` with these arguments would have, known
    without loading the weights: from the model's provenance file and ``config.json`` (its family's defaults and
    prompt rules). ``imgcaption backfill --skip-existing`` asks the table for it, as the Lambda writes it.

    Raises what loading would for a model that is not there or options its family refuses.
    """
    from imgcaption.backends.registry import precision_on, read_header

    settings = settings or Settings()
    request = _Request.of(settings, model, revision, precision, local_files_only, device)
    header = read_header(request.reference, request.revision, local_files_only=request.local_files_only)
    chosen_precision = request.precision
    if chosen_precision is None:
        from imgcaption.backends.devices import resolve_device

        used_device = "cpu" if header.is_artifact else resolve_device(request.device)  # artifacts: CPU only
        chosen_precision = precision_on(header.provenance, used_device)
    options = header.family.check_options(_options(header.family.defaults, settings, generation, prompt))
    return CaptionSignature(header.model_id, header.revision, chosen_precision, options)


@dataclass(frozen=True, slots=True)
class _Request:
    """The model a captioner is asked for: the arguments, and the settings where they are ``None``."""

    reference: str
    revision: str | None
    precision: Precision | None
    """None: the model's own (see :func:`~imgcaption.backends.registry.default_precision`)."""
    local_files_only: bool
    device: str

    @classmethod
    def of(
        cls,
        settings: Settings,
        model: str | None,
        revision: str | None,
        precision: Precision | None,
        local_files_only: bool | None,
        device: str | None,
    ) -> _Request:
        reference = model or settings.model
        if revision is None and reference == settings.model:
            revision = settings.resolved_revision
        explicit_setting = "precision" in settings.model_fields_set  # set by IMGCAPTION_PRECISION or by the caller
        return cls(
            reference,
            revision,
            precision or (settings.precision if explicit_setting else None),
            settings.local_files_only if local_files_only is None else local_files_only,
            device or settings.device,
        )


def _options(
    defaults: GenerationOptions, settings: Settings, generation: GenerationOptions | None, prompt: str | None
) -> GenerationOptions:
    """The options asked for (``generation``, else the family's defaults under the settings), with ``prompt``."""
    options = generation or _layered(defaults, settings.generation_overrides)
    return options if prompt is None else options.with_overrides(prompt=prompt)


def _layered(defaults: GenerationOptions, overrides: dict[str, Any]) -> GenerationOptions:
    """A family's default options under the ones set explicitly; a length limit set replaces the default's."""
    values = {**defaults.model_dump(), **overrides}
    if "max_length" in overrides and "max_new_tokens" not in overrides:
        values["max_new_tokens"] = None
    return GenerationOptions.model_validate(values)


def _apply_precision(loaded: LoadedModel, precision: Precision) -> LoadedModel:
    """fp32 is the model as published; fast modes and pre-quantized artifacts are the registry's (``loaded`` was
    loaded for this Captioner alone, so it may be changed in place)."""
    from imgcaption.backends.registry import prepare_for_precision

    return prepare_for_precision(loaded, precision, owned=True)
