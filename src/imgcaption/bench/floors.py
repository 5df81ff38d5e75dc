"""What an int8 ONNX artifact costs at least on this CPU: the encoder's int8 GEMM rate and the decoder's bytes per step.

Both graphs' costs come from their weights. Every int8 MatMul weight of ``encoder.onnx`` is applied to every patch
token, so (int8 weights × tokens) is the encoder's int8 multiply-adds per image: divided by its measured time, that is
the int8 GEMM rate this CPU reaches (what VNNI or AMX raises). Every weight of ``decoder.onnx`` except the embedding
tables (a lookup reads a few rows) is read once per step whatever the batch, so at batch 1 a step's time is those
bytes over the memory bandwidth one core gets: the decoder's floor. Measured at 1 thread, in CPU seconds.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgcaption.backends.cpu_int8 import cpu_flags, int8_instruction_set

_INT8_MATMULS = ("DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger")
"""ONNX Runtime's int8 matmuls: their second input is the int8 weight."""


@dataclass(frozen=True, slots=True)
class Floors:
    instruction_set: str
    encoder_int8_macs_per_image: float
    encoder_seconds_per_image: float
    decoder_bytes_per_step: float
    decoder_step_seconds: float
    """One step of batch 1 at beams 4 (4 rows), halfway through a 16-token caption."""
    steps_per_caption: int

    @property
    def encoder_gmacs_per_second(self) -> float:
        return self.encoder_int8_macs_per_image / self.encoder_seconds_per_image / 1e9

    @property
    def decoder_gigabytes_per_second(self) -> float:
        return self.decoder_bytes_per_step / self.decoder_step_seconds / 1e9

    @property
    def batch1_seconds_per_image(self) -> float:
        """Encoder plus every decoder step of one caption: the least a batch-1 caption costs here."""
        return self.encoder_seconds_per_image + self.steps_per_caption * self.decoder_step_seconds


def weight_counts(graph_path: Path) -> tuple[int, int]:
    """(int8 MatMul weight elements, bytes of every weight read per run but the lookup tables) of one graph."""
    import onnx

    graph = onnx.load(str(graph_path)).graph
    tables = {node.input[0] for node in graph.node if node.op_type == "Gather"}  # embeddings: rows looked up
    int8_weights = {node.input[1] for node in graph.node if node.op_type in _INT8_MATMULS}
    int8_elements = bytes_read = 0
    for initializer in graph.initializer:
        elements = int(np.prod(initializer.dims)) if initializer.dims else 1
        if initializer.name in int8_weights:
            int8_elements += elements
        if initializer.name not in tables:
            bytes_read += elements * onnx.helper.tensor_dtype_to_np_dtype(initializer.data_type).itemsize
    return int8_elements, bytes_read


def measure_floors(artifact: Path, *, repeats: int = 5, steps_per_caption: int = 15) -> Floors:
    """Time the encoder on one image and decoder steps at 4 rows, 1 thread, medians of ``repeats``."""
    from imgcaption.backends.base import read_provenance
    from imgcaption.backends.onnx_int8 import DECODER_FILE, ENCODER_FILE, DecoderSteps, load_onnx_artifact, vit_tokens

    provenance = read_provenance(artifact)
    model: Any = load_onnx_artifact(artifact, provenance, str(artifact), None, threads=1).model
    config = json.loads((artifact / "config.json").read_text())["encoder"]
    size, patch = int(config["image_size"]), int(config["patch_size"])
    tokens = vit_tokens(size, size, patch)
    pixels = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)

    encoder_seconds, cross = [], model._encode(pixels)
    for _ in range(repeats):
        started = time.process_time()
        model._encode(pixels)
        encoder_seconds.append(time.process_time() - started)

    rows, length = 4, steps_per_caption + 1
    step_seconds = []
    for _ in range(repeats):
        steps = DecoderSteps(model._decoder, cross, rows, (model._layers, model._heads, length, model._head_dim))
        for _ in range(length // 2):
            steps.step(np.ones(rows, dtype=np.int64), 8)
        started = time.process_time()
        steps.step(np.ones(rows, dtype=np.int64), 8)
        step_seconds.append(time.process_time() - started)

    encoder_int8, _ = weight_counts(artifact / ENCODER_FILE)
    _, decoder_bytes = weight_counts(artifact / DECODER_FILE)
    return Floors(
        instruction_set=int8_instruction_set(cpu_flags()),
        encoder_int8_macs_per_image=float(encoder_int8 * tokens),
        encoder_seconds_per_image=statistics.median(encoder_seconds),
        decoder_bytes_per_step=float(decoder_bytes),
        decoder_step_seconds=statistics.median(step_seconds),
        steps_per_caption=steps_per_caption,
    )
