"""The ONNX Runtime backend: `imgcaption optimize`'s default artifact, which captions without torch in the process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from imgcaption import Captioner, ConfigurationError, GenerationOptions, ModelLoadError
from imgcaption.backends.base import PROVENANCE_FILE, read_provenance
from imgcaption.backends.numpy_io import ImagePreprocessor
from imgcaption.backends.numpy_search import top_k
from imgcaption.backends.onnx_int8 import DECODER_FILE, ENCODER_FILE, ONNX_FORMAT, OnnxCaptioningModel
from imgcaption.backends.registry import load_model


@pytest.fixture(scope="module")
def onnx_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from imgcaption_cli.bench_commands import optimize

    target = tmp_path_factory.mktemp("onnx") / "tiny-onnx"
    result = CliRunner().invoke(optimize, [str(tiny_model_dir), str(target)])
    assert result.exit_code == 0, result.output
    assert "onnx artifact" in result.output
    return target


def photos(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(7)
    return [Image.fromarray(rng.integers(0, 255, (90 + 10 * i, 110, 3), dtype=np.uint8)) for i in range(count)]


def test_optimize_writes_an_onnx_artifact_by_default(onnx_dir: Path, tiny_model_dir: Path) -> None:
    provenance = read_provenance(onnx_dir)
    assert provenance["format"] == ONNX_FORMAT
    assert provenance["backend"] == "onnxruntime"
    assert provenance["precision"] == "int8"
    assert provenance["model_id"] == str(tiny_model_dir)
    for name in (ENCODER_FILE, DECODER_FILE, "config.json", "preprocessor_config.json", "tokenizer.json"):
        assert (onnx_dir / name).is_file(), name
    assert not list(onnx_dir.glob("*.safetensors"))  # no torch weights: the graphs carry them


def test_the_fp32_graphs_and_numpy_search_reproduce_the_exact_decoder(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The graphs and the search are right: unquantized, they give the exact (transformers-identical) tokens."""
    import onnxruntime as ort

    from imgcaption.backends.export import export_graphs

    loaded = load_model(str(tiny_model_dir))
    exact = Captioner(loaded, precision="fp32", threads=1)
    images = photos(3)
    searches = (GenerationOptions(), GenerationOptions(num_beams=3, max_new_tokens=9), GenerationOptions.greedy())
    expected = {options: exact.forward(exact.preprocess(images), options) for options in searches}
    export_graphs(load_model(str(tiny_model_dir)).model, tmp_path, image_size=loaded.model.config.encoder.image_size)
    sessions = [ort.InferenceSession(str(tmp_path / name)) for name in (ENCODER_FILE, DECODER_FILE)]
    model = OnnxCaptioningModel(*sessions, loaded.model.config.to_dict(), loaded.model.generation_config)
    pixels = exact.preprocess(images).numpy()
    for options, tokens in expected.items():
        assert np.array_equal(model.generate_token_ids(pixels, options), tokens.numpy()), options


def test_the_onnx_artifact_captions_without_importing_torch_or_transformers(onnx_dir: Path) -> None:
    script = (
        "import sys\n"
        "from PIL import Image\n"
        "from imgcaption import Captioner\n"
        f"captioner = Captioner.from_pretrained({str(onnx_dir)!r}, precision='int8', threads=1)\n"
        "caption = captioner.caption(Image.new('RGB', (64, 48), 'orange'), source='orange.png')\n"
        "assert caption.text, caption\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "print(caption.precision, caption.source)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["int8", "orange.png"]


@pytest.mark.parametrize("int8_target", ["avx2", "vnni"])
def test_onnx_int8_keeps_the_trained_scene_captioner_s_captions(int8_target: str, tmp_path: Path) -> None:
    """For either weight range (run here on this machine's kernels, whichever they are)."""
    from imgcaption.backends.export import save_onnx_artifact
    from imgcaption.testing.scene_model import scene_captioner_path
    from imgcaption.testing.scenes import held_out_scenes

    artifact = save_onnx_artifact(scene_captioner_path(), tmp_path / "scene-onnx", int8_target=int8_target)  # type: ignore[arg-type]
    assert read_provenance(artifact)["int8_target"] == int8_target
    captioner = Captioner.from_pretrained(str(artifact), precision="int8", threads=1)
    scenes = held_out_scenes(40)
    for options in (GenerationOptions(), GenerationOptions.greedy()):
        results = captioner.caption_many([scene.image for scene in scenes], generation=options, batch_size=8)
        correct = sum(result.text == scene.caption for result, scene in zip(results, scenes, strict=True))
        assert correct >= 38, (options, correct)


def test_a_bad_image_in_a_batch_fails_alone_on_the_onnx_backend(onnx_dir: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    photos(1)[0].save(good)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    captioner = Captioner.from_pretrained(str(onnx_dir), precision="int8", threads=1)
    results = captioner.caption_many([good, broken, good])
    assert [type(result).__name__ for result in results] == ["Caption", "CaptionFailure", "Caption"]
    assert results[1].source == str(broken)
    assert results[0].text == results[2].text


def test_an_onnx_artifact_refuses_to_pretend_to_be_fp32(onnx_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="pre-quantized int8 artifact"):
        Captioner.from_pretrained(str(onnx_dir), precision="fp32")


def test_a_damaged_onnx_artifact_is_a_load_error_naming_it_and_the_fix(onnx_dir: Path, tmp_path: Path) -> None:
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(onnx_dir, damaged)
    (damaged / DECODER_FILE).write_bytes((damaged / DECODER_FILE).read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="imgcaption optimize") as raised:
        Captioner.from_pretrained(str(damaged), precision="int8")
    assert str(damaged) in str(raised.value)


def test_an_artifact_of_an_unknown_onnx_format_version_is_refused(onnx_dir: Path, tmp_path: Path) -> None:
    import shutil

    future = tmp_path / "future"
    shutil.copytree(onnx_dir, future)
    provenance = json.loads((future / PROVENANCE_FILE).read_text())
    (future / PROVENANCE_FILE).write_text(json.dumps({**provenance, "format": "imgcaption-onnx-int8/99"}))
    with pytest.raises(ModelLoadError, match="imgcaption-onnx-int8/99"):
        Captioner.from_pretrained(str(future), precision="int8")


def test_a_caption_longer_than_the_decoder_s_positions_is_refused(onnx_dir: Path) -> None:
    captioner = Captioner.from_pretrained(str(onnx_dir), precision="int8", threads=1)
    positions = json.loads((onnx_dir / "config.json").read_text())["decoder"]["n_positions"]
    if positions > 255:
        pytest.skip("the tiny model's decoder has more positions than GenerationOptions allows")
    with pytest.raises(ConfigurationError, match="positions"):
        captioner.forward(captioner.preprocess(photos(1)), GenerationOptions(max_new_tokens=positions))


def test_the_numpy_preprocessor_matches_transformers(tiny_model_dir: Path, onnx_dir: Path) -> None:
    loaded = load_model(str(tiny_model_dir))
    images = [*photos(2), Image.new("RGB", (300, 20), (10, 200, 30)), Image.new("RGB", (20, 300), (77, 1, 250))]
    ours = ImagePreprocessor(json.loads((onnx_dir / "preprocessor_config.json").read_text()))(images=images)
    expected = loaded.processor(images=images, return_tensors="pt").pixel_values
    assert isinstance(ours.pixel_values, np.ndarray)
    assert torch.allclose(torch.from_numpy(ours.pixel_values), expected, atol=1e-6, rtol=0)


def test_top_k_is_best_first_and_breaks_ties_by_position() -> None:
    values = np.array([[0.1, 0.7, 0.7, -2.0, 0.9], [5.0, 4.0, 3.0, 2.0, 1.0]], dtype=np.float32)
    assert top_k(values, 3).tolist() == [[4, 1, 2], [0, 1, 2]]


def test_a_batch_is_decoded_in_as_few_even_chunks_as_fit() -> None:
    from imgcaption.backends.onnx_int8 import decode_chunks

    assert decode_chunks(10, 8) == [(0, 5), (5, 10)]
    assert decode_chunks(16, 8) == [(0, 8), (8, 16)]
    assert decode_chunks(3, 8) == [(0, 3)]
    assert decode_chunks(0, 8) == []
    for images in range(1, 40):
        chunks = decode_chunks(images, 8)
        sizes = [end - start for start, end in chunks]
        assert chunks[0][0] == 0 and chunks[-1][1] == images and max(sizes) <= 8
        assert max(sizes) - min(sizes) <= 1 and len(chunks) == -(-images // 8)


def test_a_batch_larger_than_a_decode_chunk_keeps_every_row(onnx_dir: Path) -> None:
    from imgcaption.backends.onnx_int8 import DECODE_CHUNK

    captioner = Captioner.from_pretrained(str(onnx_dir), precision="int8", threads=1)
    image = photos(1)[0]
    one = captioner.forward(captioner.preprocess([image]), GenerationOptions())
    many = captioner.forward(captioner.preprocess([image] * (DECODE_CHUNK + 2)), GenerationOptions())
    assert many.shape == (DECODE_CHUNK + 2, one.shape[1])
    assert all(np.array_equal(row, one[0]) for row in many)


def test_an_artifact_loads_in_its_own_precision_when_none_is_asked_for(onnx_dir: Path, tiny_model_dir: Path) -> None:
    assert Captioner.from_pretrained(str(onnx_dir), threads=1).precision == "int8"
    assert Captioner.from_pretrained(str(tiny_model_dir), threads=1).precision == "fp32"


def test_the_cli_captions_with_an_onnx_artifact(onnx_dir: Path, tmp_path: Path) -> None:
    from imgcaption_cli.main import cli

    photo = tmp_path / "photo.png"
    photos(1)[0].save(photo)
    result = CliRunner().invoke(cli, ["caption", str(photo), "--model", str(onnx_dir), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert (record["status"], record["precision"], record["source"]) == ("ok", "int8", str(photo))


def test_optimize_refuses_an_artifact_as_its_input(onnx_dir: Path, tmp_path: Path) -> None:
    from imgcaption_cli.bench_commands import optimize

    result = CliRunner().invoke(optimize, [str(onnx_dir), str(tmp_path / "again")])
    assert result.exit_code != 0
    assert "already an int8 artifact" in result.output
    assert not (tmp_path / "again").exists()


def test_a_captioner_built_from_a_loaded_artifact_reports_its_precision(onnx_dir: Path) -> None:
    assert Captioner(load_model(str(onnx_dir), threads=1)).precision == "int8"


def test_what_is_quantized_is_what_the_provenance_says(onnx_dir: Path) -> None:
    import onnx

    graph = onnx.load(str(onnx_dir / DECODER_FILE)).graph
    tables = {init.name: init.data_type for init in graph.initializer}
    positions = [name for name in tables if name.endswith("wpe.weight")]
    assert positions and all(tables[name] == onnx.TensorProto.FLOAT for name in positions)
    assert any(node.op_type == "DynamicQuantizeMatMul" for node in graph.node)
    assert "position embeddings fp32" in read_provenance(onnx_dir)["quantization"]


def test_a_model_whose_layers_the_int8_runtimes_do_not_implement_is_refused(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from imgcaption.backends.export import save_onnx_artifact

    variant = tmp_path / "relu-gpt2"
    shutil.copytree(tiny_model_dir, variant)
    config = json.loads((variant / "config.json").read_text())
    config["decoder"]["activation_function"] = "relu"
    (variant / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigurationError, match="'relu', not 'gelu_new'"):
        save_onnx_artifact(variant, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_artifact_from_before_the_in_place_history_is_refused_with_the_rebuild_command(
    onnx_dir: Path, tmp_path: Path
) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(onnx_dir, old)
    provenance = json.loads((old / PROVENANCE_FILE).read_text())
    (old / PROVENANCE_FILE).write_text(json.dumps({**provenance, "format": "imgcaption-onnx-int8/1"}))
    with pytest.raises(ModelLoadError, match="imgcaption optimize MODEL_DIR OUT_DIR") as raised:
        Captioner.from_pretrained(str(old), precision="int8")
    assert "imgcaption-onnx-int8/1" in str(raised.value)


def test_the_decoder_writes_each_step_into_the_bound_history_in_place(onnx_dir: Path) -> None:
    """The self-attention history is one buffer per layer that the fused kernel fills step by step: no copies out."""
    import onnx

    from imgcaption.backends.onnx_int8 import DecoderSteps, layer_names

    graph = onnx.load(str(onnx_dir / DECODER_FILE)).graph
    assert sum(node.op_type == "GroupQueryAttention" for node in graph.node) == len(graph.input[3:]) // 4
    assert not any(node.op_type == "Concat" and "past" in " ".join(node.input) for node in graph.node)

    model = load_model(str(onnx_dir), threads=1).model
    assert isinstance(model, OnnxCaptioningModel)
    size = json.loads((onnx_dir / "config.json").read_text())["encoder"]["image_size"]
    names = layer_names("cross", model._layers)
    pixels = np.zeros((1, 3, size, size), np.float32)
    cross = dict(zip(names, model._encoder.run(names, {"pixel_values": pixels}), strict=True))
    steps = DecoderSteps(model._decoder, cross, 2, (model._layers, model._heads, 5, model._head_dim))
    history = steps._history[0]
    for position in range(3):
        steps.step(np.array([1, 2]), 2)
        assert np.abs(history[:, :, position]).sum() > 0, position  # written where this step belongs
        assert not history[:, :, position + 1 :].any()  # and nowhere after it
    steps.reorder(np.array([1, 0]))
    before = history[:, :, :3].copy()
    steps.reorder(np.array([1, 0]))
    assert np.array_equal(history[:, :, :3], before[[1, 0]])


@pytest.mark.parametrize(("int8_target", "largest"), [("avx2", 64), ("vnni", 127)])
def test_weights_for_cpus_without_int8_dot_products_use_seven_bits(
    int8_target: str, largest: int, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import onnx
    from onnx import numpy_helper

    from imgcaption.backends.export import save_onnx_artifact

    artifact = save_onnx_artifact(tiny_model_dir, tmp_path / int8_target, int8_target=int8_target)  # type: ignore[arg-type]
    graph = onnx.load(str(artifact / DECODER_FILE)).graph
    weights = [numpy_helper.to_array(init) for init in graph.initializer if init.data_type == onnx.TensorProto.INT8]
    assert weights
    assert max(int(np.abs(weight.astype(np.int16)).max()) for weight in weights) == largest
    assert ("7-bit" in read_provenance(artifact)["quantization"]) == (int8_target == "avx2")


def test_a_full_range_artifact_on_a_cpu_without_int8_dot_products_warns_with_the_fix(
    onnx_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    from imgcaption.backends import onnx_int8

    def built_for(target: str) -> Path:
        copy = tmp_path / target
        shutil.copytree(onnx_dir, copy)
        provenance = json.loads((copy / PROVENANCE_FILE).read_text())
        (copy / PROVENANCE_FILE).write_text(json.dumps({**provenance, "int8_target": target}))
        return copy

    avx2, vnni = built_for("avx2"), built_for("vnni")
    monkeypatch.setattr(onnx_int8, "cpu_flags", lambda: {"avx2"})
    with caplog.at_level("WARNING", logger=onnx_int8.__name__):
        Captioner.from_pretrained(str(avx2), precision="int8", threads=1)
        assert not caplog.records  # an artifact for this kind of CPU loads quietly
        Captioner.from_pretrained(str(vnni), precision="int8", threads=1)
    assert "--int8-target avx2" in caplog.text and str(vnni) in caplog.text


def test_optimize_builds_for_the_int8_target_it_is_told(tiny_model_dir: Path, tmp_path: Path) -> None:
    from imgcaption_cli.bench_commands import optimize

    result = CliRunner().invoke(optimize, [str(tiny_model_dir), str(tmp_path / "arm"), "--int8-target", "arm"])
    assert result.exit_code == 0, result.output
    assert read_provenance(tmp_path / "arm")["int8_target"] == "arm"
    refused = CliRunner().invoke(
        optimize, [str(tiny_model_dir), str(tmp_path / "t"), "--backend", "torch", "--int8-target", "vnni"]
    )
    assert refused.exit_code == 2
    assert "--int8-target applies to --backend onnx" in refused.output
