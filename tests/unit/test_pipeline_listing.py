"""The pipeline lists as it captions; ``on_listed`` tells a caller (the CLI's progress bar) what it will caption."""

from __future__ import annotations

from PIL import Image

from imagefactory import encode
from imgcaption import Captioner
from imgcaption.pipeline import Pipeline
from imgcaption.ports import ImageRef, Skipped
from imgcaption.testing import MemorySource, MemoryStore


def jpeg(color: str) -> bytes:
    return encode(Image.new("RGB", (48, 32), color), "JPEG")


def test_on_listed_names_each_input_to_caption_after_skip_existing_and_not_the_skipped(
    tiny_captioner: Captioner,
) -> None:
    store = MemoryStore()
    Pipeline(MemorySource({"mem://done.jpg": jpeg("red")}), store, tiny_captioner).run()
    source = MemorySource(
        {"mem://done.jpg": jpeg("red"), "mem://new.jpg": jpeg("blue"), "mem://bad.jpg": b"broken"},
        skipped=[Skipped("mem://notes.txt", "not an image file")],
    )
    listed: list[ImageRef] = []
    summary = Pipeline(source, store, tiny_captioner, skip_existing=True, on_listed=listed.append).run()
    assert sorted(ref.uri for ref in listed) == ["mem://bad.jpg", "mem://new.jpg"]
    assert (summary.captioned, summary.failed, summary.skipped_existing) == (1, 1, 1)
