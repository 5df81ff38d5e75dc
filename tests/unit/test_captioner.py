"""The public Captioner API on a tiny random-weight model: structure, provenance, determinism, isolation.

Random weights caption gibberish, so these tests check plumbing, not wording (the trained scene captioner's tests
check wording).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from datetime import UTC
from pathlib import Path

import pytest
from PIL import Image

from imagefactory import encode, upright_pattern
from imgcaption import Caption, Captioner, CaptionFailure, GenerationOptions, errors
from imgcaption.backends.base import PROVENANCE_FILE

COLORS = ["red", "navy", "yellow", "black", "white", "green", "orange", "purple", "gray", "pink"]


def photo(color: str, size: tuple[int, int] = (96, 64)) -> bytes:
    """A mostly ``color`` image with an asymmetric mark, different enough for a random model to tell apart."""
    image = Image.new("RGB", size, color)
    image.paste(upright_pattern(size[0] // 3, size[1] // 3), (0, 0))
    return encode(image, "JPEG", quality=92)


def texts(results: list[Caption | CaptionFailure]) -> list[str]:
    return [r.text if isinstance(r, Caption) else f"<{r.error_type}>" for r in results]


def test_a_caption_carries_its_provenance(tiny_captioner: Captioner, tiny_model_dir: Path) -> None:
    data = photo("red", (120, 80))
    caption = tiny_captioner.caption(data, source="holiday/beach.jpg")
    assert caption.text and caption.text == caption.text.strip()
    assert caption.source == "holiday/beach.jpg"
    assert caption.model == str(tiny_model_dir)
    assert caption.generation == GenerationOptions(num_beams=4, max_length=16)
    assert (caption.width, caption.height) == (120, 80)
    assert caption.sha256 == hashlib.sha256(data).hexdigest()
    assert caption.elapsed_ms > 0
    assert caption.created_at.tzinfo is not None and caption.created_at.utcoffset() == UTC.utcoffset(None)
    assert caption.precision == "fp32"


def test_captions_are_deterministic_across_loads(tiny_model_dir: Path, tiny_captioner: Captioner) -> None:
    again = Captioner.from_pretrained(str(tiny_model_dir), threads=1)
    images = [photo(color) for color in COLORS[:3]]
    assert texts(again.caption_many(images)) == texts(tiny_captioner.caption_many(images))


def test_batched_results_equal_one_by_one_results_in_input_order(tiny_captioner: Captioner) -> None:
    images = [photo(color) for color in COLORS]
    one_by_one = [tiny_captioner.caption(image).text for image in images]
    assert len(set(one_by_one)) > 1, "the test needs images the model tells apart"
    assert texts(tiny_captioner.caption_many(images, batch_size=4)) == one_by_one
    assert texts(tiny_captioner.caption_many(images, batch_size=16)) == one_by_one


def test_one_bad_image_fails_alone_and_the_others_are_captioned(tiny_captioner: Captioner, tmp_path: Path) -> None:
    good = [photo(color) for color in COLORS[:3]]
    missing = tmp_path / "gone.jpg"
    results = tiny_captioner.caption_many([good[0], b"not an image", good[1], missing, good[2]], batch_size=8)
    assert [r.status for r in results] == ["ok", "failed", "ok", "failed", "ok"]
    assert isinstance(results[1], CaptionFailure) and results[1].error_type == "UnsupportedImageError"
    assert isinstance(results[3], CaptionFailure) and results[3].error_type == "ImageNotFoundError"
    assert results[3].source == str(missing)
    assert texts([results[0], results[2], results[4]]) == texts(tiny_captioner.caption_many(good))


def test_every_input_kind_is_accepted(tiny_captioner: Captioner, tmp_path: Path) -> None:
    """Each kind is captioned, and all alike (a kind that failed would show as its own failed status)."""
    data = photo("yellow")
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    inputs = [path, str(path), data, io.BytesIO(data), Image.open(io.BytesIO(data))]
    results = tiny_captioner.caption_many(inputs)
    assert [r.status for r in results] == ["ok"] * len(inputs), texts(results)
    assert texts(results) == [tiny_captioner.caption(data).text] * len(inputs)
    assert [r.source for r in results] == [str(path), str(path), "<bytes>", "<stream>", "<PIL.Image>"]


def test_caption_raises_the_typed_error_for_a_bad_input(tiny_captioner: Captioner) -> None:
    with pytest.raises(errors.ImageDecodeError) as raised:
        tiny_captioner.caption(b"", source="empty.jpg")
    assert raised.value.source == "empty.jpg"


def test_generation_options_can_be_overridden_per_call(tiny_captioner: Captioner) -> None:
    image = photo("green")
    short = tiny_captioner.caption(image, generation=GenerationOptions.greedy(max_new_tokens=3))
    longer = tiny_captioner.caption(image, generation=GenerationOptions(num_beams=2, max_new_tokens=20))
    assert short.generation.num_beams == 1 and short.generation.max_new_tokens == 3
    assert len(short.text) < len(longer.text)


def test_token_budgets_are_respected(tiny_captioner: Captioner) -> None:
    pixels = tiny_captioner.preprocess([Image.open(io.BytesIO(photo("green")))])
    # The random model never emits end-of-sequence, so it always uses the whole budget.
    assert tiny_captioner.forward(pixels, GenerationOptions(max_length=16)).shape == (1, 16)
    assert tiny_captioner.forward(pixels, GenerationOptions.greedy(max_new_tokens=5)).shape == (1, 6)


def test_an_inference_failure_is_isolated_to_its_image(tiny_model_dir: Path) -> None:
    class FailsOnBlack(Captioner):
        """Inference that breaks whenever a pure-black image is in the batch."""

        def forward(self, pixel_values, generation):  # type: ignore[no-untyped-def]
            if bool((pixel_values.flatten(1) == -1).all(dim=1).any()):
                raise RuntimeError("kernel exploded")
            return super().forward(pixel_values, generation)

    captioner = FailsOnBlack.from_pretrained(str(tiny_model_dir), threads=1)
    black = encode(Image.new("RGB", (32, 32), "black"), "PNG")
    results = captioner.caption_many([photo("red"), black, photo("white")], batch_size=3)
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    failure = results[1]
    assert isinstance(failure, CaptionFailure)
    assert failure.error_type == "CaptioningError" and "kernel exploded" in failure.message


# ------------------------------------------------------------------ loading


def test_a_missing_model_directory_is_a_model_load_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(errors.ModelLoadError, match="IMGCAPTION_MODEL") as raised:
        Captioner.from_pretrained(str(tmp_path / "no-such-model"))
    assert str(tmp_path / "no-such-model") in str(raised.value)


def test_a_corrupt_model_directory_is_a_model_load_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"definitely not safetensors")
    with pytest.raises(errors.ModelLoadError, match="local directory"):
        Captioner.from_pretrained(str(broken))


def test_a_hub_id_that_is_not_available_offline_says_what_was_tried() -> None:
    with pytest.raises(errors.ModelLoadError) as raised:
        Captioner.from_pretrained("nlpconnect/vit-gpt2-image-captioning", local_files_only=True)
    message = str(raised.value)
    assert "nlpconnect/vit-gpt2-image-captioning" in message
    assert "dc68f91c06a1ba6f15268e5b9c13ae7a7c514084" in message  # the pinned revision is what was asked for
    assert "IMGCAPTION_MODEL" in message


def test_a_prepared_directory_records_model_id_and_revision(tiny_model_dir: Path, tmp_path: Path) -> None:
    prepared = shutil.copytree(tiny_model_dir, tmp_path / "prepared")
    (prepared / PROVENANCE_FILE).write_text(json.dumps({"model_id": "acme/captioner", "revision": "abc123"}))
    captioner = Captioner.from_pretrained(str(prepared), threads=1)
    caption = captioner.caption(photo("red"))
    assert (caption.model, caption.revision) == ("acme/captioner", "abc123")


def test_a_hub_cache_snapshot_directory_knows_its_commit(tiny_model_dir: Path, tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = shutil.copytree(tiny_model_dir, tmp_path / "snapshots" / commit)
    assert Captioner.from_pretrained(str(snapshot), threads=1).revision == commit


def test_settings_choose_the_model_when_no_argument_is_given(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGCAPTION_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("IMGCAPTION_NUM_BEAMS", "2")
    captioner = Captioner.from_pretrained(threads=1)
    assert captioner.model_id == str(tiny_model_dir)
    assert captioner.generation.num_beams == 2


def test_thread_count_is_set_deliberately(tiny_model_dir: Path) -> None:
    import torch

    captioner = Captioner.from_pretrained(str(tiny_model_dir), threads=1)
    assert captioner.threads == 1 == torch.get_num_threads()
