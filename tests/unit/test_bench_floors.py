"""The floors' arithmetic: the work they divide by is what the model's own weights say."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from imgcaption.backends.onnx_int8 import DECODER_FILE, ENCODER_FILE
from imgcaption.backends.registry import load_model
from imgcaption.bench.floors import Floors, weight_counts


@pytest.fixture(scope="module")
def onnx_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from imgcaption.backends.export import save_onnx_artifact

    return save_onnx_artifact(tiny_model_dir, tmp_path_factory.mktemp("floors") / "onnx")


def test_the_encoder_s_int8_work_is_every_vit_linear_and_cross_projection_weight(
    tiny_model_dir: Path, onnx_dir: Path
) -> None:
    model = load_model(str(tiny_model_dir)).model
    vit = sum(
        m.weight.numel() for n, m in model.encoder.named_modules() if isinstance(m, nn.Linear) and "pooler" not in n
    )
    cross = sum(block.crossattention.c_attn.weight.numel() for block in model.decoder.transformer.h)
    int8_elements, _ = weight_counts(onnx_dir / ENCODER_FILE)
    assert int8_elements == vit + cross


def test_a_decoder_step_reads_every_weight_but_the_embedding_tables(tiny_model_dir: Path, onnx_dir: Path) -> None:
    model = load_model(str(tiny_model_dir)).model
    gpt2 = model.decoder
    matmuls = sum(
        module.weight.numel()
        for name, module in gpt2.transformer.h.named_modules()
        if hasattr(module, "weight") and module.weight.dim() == 2 and "crossattention.c_attn" not in name
    )  # the cross keys/values are projected in the encoder graph
    int8_elements, read = weight_counts(onnx_dir / DECODER_FILE)
    assert int8_elements == matmuls + gpt2.lm_head.weight.numel()
    # what else is read (fp32 norms, biases, scales) is far less than the token table a lookup does not read
    assert 0 < read - int8_elements < gpt2.transformer.wte.weight.numel()


def test_rates_are_work_over_time() -> None:
    floors = Floors("AVX2", 20e9, 0.25, 138e6, 0.023, 15)
    assert floors.encoder_gmacs_per_second == pytest.approx(80)
    assert floors.decoder_gigabytes_per_second == pytest.approx(6.0, rel=1e-3)
    assert floors.batch1_seconds_per_image == pytest.approx(0.25 + 15 * 0.023)
