"""Every model family on tiny random-weight models built here (no download): BLIP, GIT, Florence-2, a chat model.

For each, our caption path must give exactly the tokens and text of that family's reference call (its processor,
``model.generate`` with the same options, its processor's decoding, as on the model cards), keep each caption with
its image in a batch, fail a bad image alone, and work through the CLI and the SQLite store. A prompt is part of a
caption's identity; a family that cannot honour an option refuses it.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from imgcaption import Captioner, ConfigurationError, GenerationOptions, ModelLoadError, Settings
from imgcaption.testing.family_models import FAMILY_MODEL_FACTORIES
from imgcaption_cli.main import cli

FAMILIES = tuple(FAMILY_MODEL_FACTORIES)

# Options each reference comparison runs with: beams and a prompt, wherever the family takes one.
OPTIONS = {
    "blip": GenerationOptions(num_beams=2, max_new_tokens=8, prompt="a photography of"),
    "git": GenerationOptions(num_beams=2, max_new_tokens=8),
    "florence2": GenerationOptions(num_beams=2, max_new_tokens=8, prompt="<DETAILED_CAPTION>"),
    "chat": GenerationOptions(num_beams=2, max_new_tokens=8, prompt="Write a short caption for this photo."),
}


def noise_images(count: int, seed: int = 0, size: tuple[int, int] = (40, 30)) -> list[Image.Image]:
    """Distinct random-pixel images: a random model's captions differ for them."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(count)]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {name: factory(root / name) for name, factory in FAMILY_MODEL_FACTORIES.items()}


@pytest.fixture(scope="module")
def captioners(family_dirs: dict[str, Path]) -> dict[str, Captioner]:
    return {name: Captioner.from_pretrained(str(path), threads=1) for name, path in family_dirs.items()}


# ------------------------------------------------------------------------------------- the reference calls


def reference_blip(directory: Path, images: list[Image.Image], options: GenerationOptions) -> tuple[Any, list[str]]:
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor = BlipProcessor.from_pretrained(directory)
    model = BlipForConditionalGeneration.from_pretrained(directory).eval()
    rows, texts = [], []
    for image in images:
        inputs = processor(images=image, text=options.prompt, return_tensors="pt")
        out = model.generate(**inputs, num_beams=options.num_beams, max_new_tokens=options.max_new_tokens)
        rows.append(out[0])
        texts.append(processor.decode(out[0], skip_special_tokens=True).strip())
    return rows, texts


def reference_git(directory: Path, images: list[Image.Image], options: GenerationOptions) -> tuple[Any, list[str]]:
    from transformers import AutoProcessor, GitForCausalLM

    processor = AutoProcessor.from_pretrained(directory)
    model = GitForCausalLM.from_pretrained(directory).eval()
    rows, texts = [], []
    for image in images:
        pixel_values = processor(images=image, return_tensors="pt").pixel_values
        out = model.generate(
            pixel_values=pixel_values, num_beams=options.num_beams, max_new_tokens=options.max_new_tokens
        )
        rows.append(out[0])
        texts.append(processor.batch_decode(out, skip_special_tokens=True)[0].strip())
    return rows, texts


def reference_florence2(
    directory: Path, images: list[Image.Image], options: GenerationOptions
) -> tuple[Any, list[str]]:
    from transformers import AutoProcessor, Florence2ForConditionalGeneration

    processor = AutoProcessor.from_pretrained(directory)
    model = Florence2ForConditionalGeneration.from_pretrained(directory).eval()
    rows, texts = [], []
    for image in images:
        inputs = processor(text=options.prompt, images=image, return_tensors="pt")
        out = model.generate(**inputs, num_beams=options.num_beams, max_new_tokens=options.max_new_tokens)
        generated = processor.batch_decode(out, skip_special_tokens=False)[0]
        parsed = processor.post_process_generation(generated, task=options.prompt, image_size=image.size)
        rows.append(out[0])
        texts.append(parsed[options.prompt])
    return rows, texts


def reference_chat(directory: Path, images: list[Image.Image], options: GenerationOptions) -> tuple[Any, list[str]]:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(directory)
    model = AutoModelForImageTextToText.from_pretrained(directory).eval()
    rows, texts = [], []
    for image in images:
        messages = [
            {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": options.prompt}]}
        ]
        inputs = processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
        out = model.generate(**inputs, num_beams=options.num_beams, max_new_tokens=options.max_new_tokens)
        answer = out[:, inputs["input_ids"].shape[1] :]
        rows.append(answer[0])
        texts.append(processor.batch_decode(answer, skip_special_tokens=True)[0].strip())
    return rows, texts


REFERENCES: dict[str, Callable[[Path, list[Image.Image], GenerationOptions], tuple[Any, list[str]]]] = {
    "blip": reference_blip,
    "git": reference_git,
    "florence2": reference_florence2,
    "chat": reference_chat,
}


@pytest.mark.parametrize("family", FAMILIES)
def test_our_captions_are_token_for_token_the_familys_reference_generate(
    family: str, family_dirs: dict[str, Path], captioners: dict[str, Captioner]
) -> None:
    """Token ids one image at a time, as the model cards call them; texts through a batch of three, which pads.

    Catches a caption path that drops the prompt, lays it out differently, or decodes another way."""
    captioner, options = captioners[family], OPTIONS[family]
    images = noise_images(3)
    expected_ids, expected_texts = REFERENCES[family](family_dirs[family], images, options)
    ours = [captioner.forward(captioner.preprocess([image]), options)[0] for image in images]
    assert [row.tolist() for row in ours] == [row.tolist() for row in expected_ids]
    captions = captioner.caption_many([png_bytes(image) for image in images], generation=options, batch_size=3)
    assert [caption.text for caption in captions] == expected_texts
    assert all(caption.generation == options for caption in captions)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_batch_keeps_each_caption_with_its_image(family: str, captioners: dict[str, Captioner]) -> None:
    captioner = captioners[family]
    options = OPTIONS[family]
    images = [png_bytes(image) for image in noise_images(3, seed=1)]
    alone = [captioner.caption(image, generation=options).text for image in images]
    together = [result.text for result in captioner.caption_many(images, generation=options, batch_size=3)]
    assert len(set(alone)) == 3, "the random model must tell these images apart for this test to mean anything"
    assert together == alone


@pytest.mark.parametrize("family", FAMILIES)
def test_a_bad_image_fails_alone(family: str, captioners: dict[str, Captioner]) -> None:
    captioner = captioners[family]
    good = [png_bytes(image) for image in noise_images(2, seed=2)]
    results = captioner.caption_many([good[0], b"not an image", good[1]], generation=OPTIONS[family], batch_size=3)
    assert [result.status for result in results] == ["ok", "failed", "ok"]


def test_a_family_is_read_from_config_json(captioners: dict[str, Captioner]) -> None:
    assert {name: captioner.family for name, captioner in captioners.items()} == {name: name for name in FAMILIES}


def test_families_fill_in_their_default_prompt_so_it_is_recorded(captioners: dict[str, Captioner]) -> None:
    assert captioners["florence2"].generation.prompt == "<CAPTION>"
    assert captioners["chat"].generation.prompt == "Describe this image in one sentence."
    assert captioners["blip"].generation.prompt is None  # BLIP captions without a prefix unless given one
    assert captioners["git"].generation.prompt is None


# ------------------------------------------------------------------------------------- options a family refuses


def test_vit_gpt2_and_git_refuse_a_prompt(tiny_captioner: Captioner, captioners: dict[str, Captioner]) -> None:
    image = png_bytes(noise_images(1)[0])
    for captioner in (tiny_captioner, captioners["git"]):
        with pytest.raises(ConfigurationError, match="take no prompt"):
            captioner.caption(image, prompt="a photography of")


def test_florence2_takes_only_its_captioning_task_tokens(captioners: dict[str, Captioner]) -> None:
    with pytest.raises(ConfigurationError, match="<CAPTION>, <DETAILED_CAPTION>, <MORE_DETAILED_CAPTION>"):
        captioners["florence2"].caption(png_bytes(noise_images(1)[0]), prompt="<OD>")


def test_a_chat_model_refuses_max_length_which_would_count_its_prompt(captioners: dict[str, Captioner]) -> None:
    with pytest.raises(ConfigurationError, match="max_new_tokens"):
        captioners["chat"].caption(png_bytes(noise_images(1)[0]), generation=GenerationOptions(max_length=16))


def test_a_prompt_from_settings_reaches_the_caption(family_dirs: dict[str, Path]) -> None:
    captioner = Captioner.from_pretrained(
        str(family_dirs["blip"]), threads=1, settings=Settings(prompt="a picture of", max_new_tokens=4)
    )
    caption = captioner.caption(png_bytes(noise_images(1)[0]))
    assert caption.generation.prompt == "a picture of" and caption.generation.max_new_tokens == 4
    assert caption.text.startswith("a picture of")  # BLIP continues the prefix it was given


def test_a_prompt_is_part_of_a_captions_identity_only_when_set() -> None:
    assert GenerationOptions().key == "beams4-len16"  # the keys of captions already stored do not change
    prompted = {GenerationOptions(prompt=text).key for text in ("a photography of", "a picture of")}
    assert len(prompted) == 2 and all(key.startswith("beams4-len16-prompt") for key in prompted)


# ------------------------------------------------------------------------------------- loading


def test_an_unsupported_model_names_its_type_and_the_supported_families(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(ModelLoadError) as raised:
        Captioner.from_pretrained(str(tmp_path))
    message = str(raised.value)
    assert "'bert'" in message and "BertModel" in message
    for family in ("vit-gpt2", "blip", "git", "florence2", "chat"):
        assert f"{family}:" in message


def test_a_blip_that_is_not_a_captioner_is_refused(tmp_path: Path) -> None:
    config = {"model_type": "blip", "architectures": ["BlipForQuestionAnswering"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="BlipForQuestionAnswering"):
        Captioner.from_pretrained(str(tmp_path))


# ------------------------------------------------------------------------------------- modes and devices


@pytest.mark.parametrize("family", ["blip", "chat"])
def test_int8_quantizes_a_familys_linear_layers(family: str, family_dirs: dict[str, Path]) -> None:
    captioner = Captioner.from_pretrained(str(family_dirs[family]), precision="int8", threads=1)
    modules = list(captioner._loaded.model.modules())
    assert not [module for module in modules if type(module) is torch.nn.Linear]
    assert any(isinstance(module, torch.ao.nn.quantized.dynamic.Linear) for module in modules)
    caption = captioner.caption(png_bytes(noise_images(1)[0]), generation=OPTIONS[family])
    assert caption.precision == "int8" and caption.text


def test_int8_quantizes_a_model_it_loaded_itself_in_place_and_a_shared_one_as_a_copy(
    family_dirs: dict[str, Path],
) -> None:
    """In place, the fp32 weights are not held twice while quantizing; a model someone else holds is left as it is."""
    from imgcaption.backends.registry import load_model, prepare_for_precision

    shared = load_model(str(family_dirs["blip"]))
    copied = prepare_for_precision(shared, "int8")
    assert copied.model is not shared.model
    assert any(type(module) is torch.nn.Linear for module in shared.model.modules())  # still fp32

    owned = load_model(str(family_dirs["blip"]))
    quantized = prepare_for_precision(owned, "int8", owned=True)
    assert quantized.model is owned.model
    assert not any(type(module) is torch.nn.Linear for module in owned.model.modules())


def test_imgcaption_optimize_refuses_another_family(family_dirs: dict[str, Path], tmp_path: Path) -> None:
    from imgcaption.backends.export import save_torch_artifact

    with pytest.raises(ConfigurationError, match="vit-gpt2 models only"):
        save_torch_artifact(family_dirs["blip"], tmp_path / "out")


@pytest.mark.parametrize("family", FAMILIES)
def test_half_precision_weights_caption_through_the_same_stages(family: str, family_dirs: dict[str, Path]) -> None:
    """What a GPU runs (cast weights, inputs cast to match), here in bf16 on the CPU; scripts/check_gpu.py checks a
    real GPU. Catches pixels left in fp32 for half-precision weights (a dtype mismatch in the first layer)."""
    from imgcaption.backends.registry import cast_precision, load_model

    loaded = cast_precision(load_model(str(family_dirs[family])), "bf16")
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    captioner = Captioner(loaded, precision="bf16")
    results = captioner.caption_many([png_bytes(image) for image in noise_images(2)], generation=OPTIONS[family])
    assert [result.status for result in results] == ["ok", "ok"]


def test_the_cpu_refuses_gpu_precisions_and_an_absent_gpu(family_dirs: dict[str, Path]) -> None:
    with pytest.raises(ConfigurationError, match="GPU precision"):
        Captioner.from_pretrained(str(family_dirs["git"]), precision="fp16", device="cpu", threads=1)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigurationError, match="no CUDA GPU"):
            Captioner.from_pretrained(str(family_dirs["git"]), device="cuda", threads=1)


# ------------------------------------------------------------------------------------- CLI and store


def run_cli(*args: str | Path, env: dict[str, str]) -> Any:
    return CliRunner().invoke(cli, [str(arg) for arg in args], env=env, catch_exceptions=False)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_cli_captions_into_the_store_and_skip_existing_tells_prompts_apart(
    family: str, family_dirs: dict[str, Path], tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for index, image in enumerate(noise_images(2, seed=3)):
        image.save(photos / f"{index}.png")
    db = tmp_path / "captions.db"
    env = {"IMGCAPTION_MODEL": str(family_dirs[family]), "IMGCAPTION_DB": str(db), "IMGCAPTION_THREADS": "1"}
    first = {"blip": "a photography of", "florence2": "<CAPTION>", "chat": "Describe this image in one sentence."}
    second = {"blip": "a picture of", "florence2": "<MORE_DETAILED_CAPTION>", "chat": "Write a short caption."}
    budget = ("--max-new-tokens", "6", "--beams", "1")

    prompt_args = ("--prompt", first[family]) if family in first else ()
    result = run_cli("caption", photos, *budget, *prompt_args, "-f", "jsonl", "-q", env=env)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert [record["status"] for record in records] == ["ok", "ok"]
    assert {record["generation"]["prompt"] for record in records} == {first.get(family)}

    again = run_cli("caption", photos, *budget, *prompt_args, "--skip-existing", "-f", "jsonl", "-q", env=env)
    assert again.exit_code == 0 and again.output.strip() == ""  # same prompt: both already captioned

    if family in second:
        other = run_cli(
            "caption", photos, *budget, "--prompt", second[family], "--skip-existing", "-f", "jsonl", "-q", env=env
        )
        assert other.exit_code == 0, other.output
        assert len(other.output.splitlines()) == 2  # another prompt is another caption
    else:
        refused = run_cli("caption", photos, *budget, "--prompt", "a photography of", "-q", env=env)
        assert refused.exit_code == 2 and "take no prompt" in refused.output
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT status FROM outcomes").fetchall()
    assert rows == [("ok",)] * (4 if family in second else 2)


def test_the_prompt_and_device_come_from_the_environment_too(family_dirs: dict[str, Path], tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    noise_images(1)[0].save(photo)
    env = {"IMGCAPTION_MODEL": str(family_dirs["blip"]), "IMGCAPTION_THREADS": "1", "IMGCAPTION_DEVICE": "cpu"}
    result = run_cli(
        "caption", photo, "--max-new-tokens", "4", "-f", "json", "-q", env={**env, "IMGCAPTION_PROMPT": "a picture of"}
    )
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.output)
    assert record["generation"]["prompt"] == "a picture of" and record["text"].startswith("a picture of")
    refused = run_cli("caption", photo, env={**env, "IMGCAPTION_DEVICE": "gpu"})
    assert refused.exit_code == 2 and "device" in refused.output
