"""The ONNX Runtime backend: run an artifact made by ``imgcaption optimize`` with numpy, ONNX Runtime and Pillow.

Why a second int8 runtime beside :mod:`.torch_int8` (torch): a process that never imports torch starts in a
fraction of the time (``import torch`` alone is seconds on a small CPU, more than the whole cold-start budget), and
ONNX Runtime keeps one prepacked copy of the int8 weights where torch's fbgemm keeps 2.4×, so the resident set stays
small enough for a 1–2 GB Lambda. The graphs are described in :mod:`.export`; the search is
:mod:`.numpy_search`. Captions match torch's int8 mode closely but not bit for bit (different kernels).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgcaption.backends.base import LoadedModel, read_artifact_configs
from imgcaption.backends.cpu_int8 import cpu_flags, int8_target
from imgcaption.backends.numpy_io import ImagePreprocessor, TokenDecoder
from imgcaption.backends.numpy_search import SearchSettings, beam_search, greedy
from imgcaption.distribution import install_hint
from imgcaption.errors import ConfigurationError, ModelLoadError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from imgcaption.generation import GenerationOptions

ONNX_FORMAT = "imgcaption-onnx-int8/2"
"""``format`` in the provenance file of a directory made by :func:`.export.save_onnx_artifact`."""
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
DECODE_CHUNK = 8
"""Most images decoded together: see :meth:`OnnxCaptioningModel.generate_token_ids`."""
logger = logging.getLogger(__name__)
_REBUILD = "Rebuild it with `imgcaption optimize MODEL_DIR OUT_DIR`."


def layer_names(prefix: str, layers: int) -> list[str]:
    """Graph input/output names of per-layer keys and values: ``cross_key_0, cross_value_0, cross_key_1, …``."""
    return [f"{prefix}_{kind}_{index}" for index in range(layers) for kind in ("key", "value")]


def vit_tokens(height: int, width: int, patch_size: int) -> int:
    """The tokens a ViT encodes an image into: one per patch, and the class token."""
    return (height // patch_size) * (width // patch_size) + 1


def decode_chunks(images: int, largest: int) -> list[tuple[int, int]]:
    """``(start, end)`` of as few chunks of at most ``largest`` images as cover ``images``, as even as possible (10
    images in chunks of at most 8 are 5 + 5, not 8 + 2: a small last chunk reads all the weights for few rows)."""
    count = -(-images // largest)
    bounds = [round(index * images / count) for index in range(count + 1)] if count else [0]
    return list(pairwise(bounds))


class DecoderSteps:
    """One generation's self-attention history, kept in place between the decoder graph's steps.

    Each layer's keys and values live in one buffer of the caption's full length, bound once as both the graph's
    ``past_*`` input and its ``present_*`` output (ONNX Runtime's I/O binding), so the attention kernel writes each
    step's key and value into it where they belong; the cross keys and values are bound once too. A step then only
    feeds the new tokens and reads back the top ``k``. Reordering the beams copies the filled part of each buffer.
    """

    def __init__(self, session: Any, cross: dict[str, np.ndarray], rows: int, shape: tuple[int, int, int, int]) -> None:
        import onnxruntime as ort

        layers, heads, length, head_dim = shape
        self._session = session
        self._binding = session.io_binding()
        self._history = [np.zeros((rows, heads, length, head_dim), dtype=np.float32) for _ in range(2 * layers)]
        self._bound = [ort.OrtValue.ortvalue_from_numpy(buffer) for buffer in self._history]
        self._cross = [ort.OrtValue.ortvalue_from_numpy(array) for array in cross.values()]
        for name, value in zip(cross, self._cross, strict=True):
            self._binding.bind_ortvalue_input(name, value)
        self._binding.bind_output("scores")  # bound first: get_outputs() lists outputs in the order they were bound
        self._binding.bind_output("ids")
        pasts, presents = layer_names("past", layers), layer_names("present", layers)
        for past, present, value in zip(pasts, presents, self._bound, strict=True):
            self._binding.bind_ortvalue_input(past, value)
            self._binding.bind_ortvalue_output(present, value)
        self._position = 0

    def step(self, tokens: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._position >= self._history[0].shape[2]:
            raise ConfigurationError(f"the decoder's history holds {self._position} steps; no room for another")
        self._binding.bind_cpu_input("tokens", np.ascontiguousarray(tokens, dtype=np.int64))
        self._binding.bind_cpu_input("position", np.array([self._position], dtype=np.int64))
        self._binding.bind_cpu_input("k", np.array(k, dtype=np.int64))
        self._session.run_with_iobinding(self._binding)
        scores, ids = (output.numpy() for output in self._binding.get_outputs()[:2])
        self._position += 1
        return scores, ids

    def reorder(self, rows: np.ndarray) -> None:
        if not np.array_equal(rows, np.arange(rows.shape[0])):
            filled = self._position
            for buffer in self._history:
                buffer[:, :, :filled] = buffer[rows, :, :filled]


class OnnxCaptioningModel:
    """Encoder and decoder sessions plus the generation settings: pixels in, token ids out."""

    def __init__(self, encoder: Any, decoder: Any, config: Mapping[str, Any], generation_config: Any) -> None:
        self._encoder = encoder
        self._decoder = decoder
        gpt2 = config["decoder"]
        self._layers, self._heads = int(gpt2["n_layer"]), int(gpt2["n_head"])
        self._head_dim = int(gpt2["n_embd"]) // self._heads
        self._positions = int(gpt2["n_positions"])
        self._patch_size = int(config["encoder"]["patch_size"])
        self.search = SearchSettings.from_generation_config(generation_config)

    def generate_token_ids(self, pixel_values: Any, options: GenerationOptions) -> np.ndarray:
        """Token ids (start token first) for a batch of pixel arrays ``(images, 3, height, width)``.

        The encoder runs one image at a time and the decoder on even chunks of at most :data:`DECODE_CHUNK` images: a
        batched encoder is no faster per image (it is compute-bound) but holds every image's activations at once,
        while the decoder (bound by reading its weights) shares each step's weight reads across the chunk's rows.
        Measured on the full-size model with the history written in place: a batch of 10 as 5 + 5 takes 0.95× the
        CPU of 3 + 3 + 4, at the same peak RSS; beyond 8 images the cross keys/values outgrow the caches.
        """
        length = options.total_length
        if length > self._positions:
            raise ConfigurationError(f"max length {length} exceeds the decoder's {self._positions} positions")
        pixels = np.ascontiguousarray(np.asarray(pixel_values, dtype=np.float32))
        chunks = [self._decode(pixels[start:end], options) for start, end in decode_chunks(len(pixels), DECODE_CHUNK)]
        if len(chunks) == 1:
            return chunks[0]
        width = max(chunk.shape[1] for chunk in chunks)  # shorter chunks are padded, as generate pads a batch
        return np.concatenate(
            [np.pad(chunk, ((0, 0), (0, width - chunk.shape[1])), constant_values=self.search.pad) for chunk in chunks]
        )

    def _decode(self, pixels: np.ndarray, options: GenerationOptions) -> np.ndarray:
        images = pixels.shape[0]
        cross = self._encode(pixels)
        shape = (self._layers, self._heads, options.total_length, self._head_dim)
        steps = DecoderSteps(self._decoder, cross, images * options.num_beams, shape)
        if options.num_beams == 1:
            return greedy(steps, images, options.total_length, self.search)
        return beam_search(steps, images, options.num_beams, options.total_length, self.search)

    def _encode(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """Every layer's cross keys and values for these images, one image per encoder run.

        Each run writes straight into its rows of buffers allocated once for all the images (bound as the graph's
        outputs), so the decoder gets them without a concatenation.
        """
        import onnxruntime as ort

        images, _, height, width = pixels.shape
        patches = vit_tokens(height, width, self._patch_size)
        shape = (images, self._heads, patches, self._head_dim)
        cross = {name: np.empty(shape, dtype=np.float32) for name in layer_names("cross", self._layers)}
        binding = self._encoder.io_binding()
        for image in range(images):
            binding.bind_cpu_input("pixel_values", pixels[image : image + 1])
            for name, buffer in cross.items():
                binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(buffer[image : image + 1]))
            self._encoder.run_with_iobinding(binding)
        return cross


def _session_options(threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Without the arena, memory from a large batch goes back to the system instead of staying reserved: peak RSS
    # is what a Lambda's memory size has to cover. Measured while building this: batch 1 no slower; after a batch of
    # 4 the process held ~120 MB less (peak ~40 MB lower).
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3  # errors only; ONNX Runtime's warnings are about its own internals
    # Idle threads sleep instead of spinning: no faster here at 2 threads, and spinning burns the CPU that other
    # work on the machine (or the image decoding thread) needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _warn_if_built_for_other_int8_hardware(directory: Path, provenance: Mapping[str, Any]) -> None:
    """Full 8-bit weights on a CPU without int8 dot products can saturate (see :mod:`.cpu_int8`): say so, and how."""
    built_for = provenance.get("int8_target")
    if built_for in (None, "avx2") or int8_target(cpu_flags()) != "avx2":
        return
    logger.warning(
        "%s was quantized for %s CPUs (full 8-bit weights); this CPU has no int8 dot-product instructions, where "
        "such weights can saturate and change captions. Rebuild it here with `imgcaption optimize ... "
        "--int8-target avx2`.",
        directory,
        built_for,
    )


def load_onnx_artifact(
    directory: Path, provenance: Mapping[str, Any], model_id: str, revision: str | None, *, threads: int | None = None
) -> LoadedModel:
    """Load an ONNX int8 artifact: two sessions and the token decoder (loaded in parallel), the preprocessor."""
    from types import SimpleNamespace

    if provenance.get("format") != ONNX_FORMAT:
        raise ModelLoadError(
            f"{directory} holds a model in format {provenance.get('format')!r}, not {ONNX_FORMAT!r}. {_REBUILD}",
            source=str(directory),
        )
    _warn_if_built_for_other_int8_hardware(directory, provenance)
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelLoadError(
            f"{directory} is an ONNX artifact and onnxruntime is not installed: `{install_hint('onnx')}`",
            source=str(directory),
        ) from exc
    try:
        config, generation_config = read_artifact_configs(directory)
        generation_config = {"length_penalty": None, "early_stopping": None, "pad_token_id": None, **generation_config}
        generation_config.setdefault("eos_token_id", config["decoder"].get("eos_token_id"))
        generation_config.setdefault("decoder_start_token_id", config.get("decoder_start_token_id"))
        options = _session_options(threads)
        # the tokenizer (0.2-0.3 s to parse GPT-2's vocabulary and merges) loads beside the two sessions
        with ThreadPoolExecutor(max_workers=3) as pool:
            tokenizer = pool.submit(TokenDecoder, directory / "tokenizer.json")
            encoder, decoder = pool.map(
                lambda name: ort.InferenceSession(str(directory / name), options, providers=["CPUExecutionProvider"]),
                (ENCODER_FILE, DECODER_FILE),
            )
            tokens = tokenizer.result()
        model = OnnxCaptioningModel(encoder, decoder, config, SimpleNamespace(**generation_config))
        preprocessor = ImagePreprocessor(json.loads((directory / "preprocessor_config.json").read_text()))
    except Exception as exc:
        raise ModelLoadError(
            f"could not load the ONNX artifact in {directory}: {type(exc).__name__}: {exc}. {_REBUILD}",
            source=str(directory),
        ) from exc
    return LoadedModel(model, preprocessor, tokens, model_id, revision, dict(provenance), model.generate_token_ids)
