"""Fast mode int8: what `imgcaption optimize` writes, how it loads, and how close its captions stay to fp32."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from imgcaption import Captioner, ConfigurationError, GenerationOptions
from imgcaption.backends.base import PROVENANCE_FILE, read_provenance
from imgcaption.backends.registry import load_model
from imgcaption.backends.torch_int8 import ARTIFACT_FORMAT, ImagePreprocessor, TokenDecoder
from imgcaption.bench.runner import token_agreement


@pytest.fixture(scope="module")
def artifact_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from imgcaption_cli.bench_commands import optimize

    target = tmp_path_factory.mktemp("artifact") / "tiny-int8"
    result = CliRunner().invoke(optimize, [str(tiny_model_dir), str(target), "--backend", "torch"])
    assert result.exit_code == 0, result.output
    return target


def photos(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (80 + 10 * i, 120, 3), dtype=np.uint8)) for i in range(count)]


def test_optimize_writes_safetensors_and_records_precision_and_source(artifact_dir: Path, tiny_model_dir: Path) -> None:
    provenance = read_provenance(artifact_dir)
    assert provenance["precision"] == "int8"
    assert provenance["format"] == ARTIFACT_FORMAT
    assert provenance["model_id"] == str(tiny_model_dir)
    assert (artifact_dir / "model-int8.safetensors").is_file()
    assert not (artifact_dir / "model.safetensors").exists()  # no fp32 copy travels with it


def test_the_artifact_loads_and_captions_without_importing_transformers(artifact_dir: Path) -> None:
    code = (
        "import sys\n"
        "from PIL import Image\n"
        "from imgcaption import Captioner\n"
        f"c = Captioner.from_pretrained({str(artifact_dir)!r}, precision='int8', threads=1)\n"
        "caption = c.caption(Image.new('RGB', (50, 40), 'red'))\n"
        "assert caption.precision == 'int8' and caption.text, caption\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_artifact_decodes_exactly_like_quantizing_at_load(artifact_dir: Path, tiny_model_dir: Path) -> None:
    saved = Captioner.from_pretrained(str(artifact_dir), precision="int8", threads=1)
    at_load = Captioner.from_pretrained(str(tiny_model_dir), precision="int8", threads=1)
    for options in (GenerationOptions(), GenerationOptions(num_beams=1, max_new_tokens=10)):
        images = photos(3)
        assert torch.equal(
            saved.forward(saved.preprocess(images), options), at_load.forward(at_load.preprocess(images), options)
        )


def test_an_artifact_refuses_to_pretend_to_be_fp32(artifact_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="pre-quantized int8 artifact"):
        Captioner.from_pretrained(str(artifact_dir), precision="fp32")


def test_a_precision_that_does_not_exist_is_refused_by_name(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="bf16"):
        Captioner.from_pretrained(str(tiny_model_dir), precision="bf16")  # type: ignore[arg-type]


def test_the_light_preprocessor_and_token_decoder_match_transformers(tiny_model_dir: Path, artifact_dir: Path) -> None:
    import json

    loaded = load_model(str(tiny_model_dir))
    images = [*photos(2), Image.new("RGB", (300, 20), "teal")]
    ours = ImagePreprocessor(json.loads((artifact_dir / "preprocessor_config.json").read_text()), framework="pt")
    expected = loaded.processor(images=images, return_tensors="pt").pixel_values
    assert torch.allclose(ours(images=images).pixel_values, expected, atol=1e-6, rtol=0)
    ids = torch.tensor([[50256, 64, 2266, 6616, 2029, 257, 4171, 22950, 50256, 50256]])
    assert TokenDecoder(artifact_dir / "tokenizer.json").batch_decode(ids) == loaded.tokenizer.batch_decode(
        ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
    )


def test_int8_keeps_the_trained_scene_captioner_s_captions() -> None:
    """Fidelity where captions mean something: at least 95% of tokens agree with fp32 on held-out scenes."""
    from imgcaption.testing.scene_model import scene_captioner_path
    from imgcaption.testing.scenes import held_out_scenes

    path = str(scene_captioner_path())
    fp32 = Captioner.from_pretrained(path, precision="fp32", threads=1)
    int8 = Captioner.from_pretrained(path, precision="int8", threads=1)
    matches = total = 0
    for scene in held_out_scenes(12):
        a = fp32.forward(fp32.preprocess([scene.image]), GenerationOptions())[0].tolist()
        b = int8.forward(int8.preprocess([scene.image]), GenerationOptions())[0].tolist()
        hit, length = token_agreement(a, b, pad=50256)
        matches, total = matches + hit, total + length
    assert matches / total >= 0.95
    assert int8.caption(held_out_scenes(1)[0].image).precision == "int8"


def test_optimize_refuses_an_artifact_as_input(artifact_dir: Path, tmp_path: Path) -> None:
    from imgcaption_cli.bench_commands import optimize

    result = CliRunner().invoke(optimize, [str(artifact_dir), str(tmp_path / "again"), "--backend", "torch"])
    assert result.exit_code != 0
    assert "already an int8 artifact" in result.output
    assert (artifact_dir / PROVENANCE_FILE).is_file()
