"""The HTML gallery: a self-contained page (images inlined), every input shown, failures stand out, nothing injected."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from imgcaption.local.gallery import ResultList, render_gallery, thumbnail_data_uri
from imgcaption.results import Caption, CaptionFailure


class Page(HTMLParser):
    """What a browser would see: tags with attributes, and the text."""

    def __init__(self, document: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(document)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def photo(path: Path) -> Path:
    Image.new("RGB", (640, 480), "orange").save(path)
    return path


def test_a_gallery_embeds_thumbnails_and_highlights_failures(tmp_path: Path) -> None:
    ok = Caption(text="an orange wall", source=str(photo(tmp_path / "a.png")), model="m", width=640, height=480,
                 elapsed_ms=1)  # fmt: skip
    bad = CaptionFailure(source=str(tmp_path / "b.jpg"), model="m", error_type="ImageDecodeError", message="truncated")
    page = Page(render_gallery([ok, bad], title="mine"))
    figures = [attrs.get("class") for attrs in page.all("figure")]
    assert figures == ["failed", "ok"]  # failures first, so they are not missed
    (image,) = page.all("img")
    source = image["src"] or ""
    assert source.startswith("data:image/jpeg;base64,")  # self-contained: no file references
    thumbnail = Image.open(io.BytesIO(base64.b64decode(source.partition(",")[2])))
    assert max(thumbnail.size) == 256
    text = " ".join(page.text)
    assert "an orange wall" in text
    assert "ImageDecodeError: truncated" in text
    assert "1 captioned, 1 failed" in text


def test_untrusted_text_is_escaped(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    ok = Caption(text=evil, source=f"/tmp/{evil}.jpg", model=evil, width=1, height=1, elapsed_ms=0)
    page = Page(render_gallery([ok], title=evil, notice=evil))
    assert page.all("script") == []
    assert all(attrs.get("onerror") is None for attrs in page.all("img"))
    assert evil in "".join(page.text)


def test_a_notice_is_shown_prominently() -> None:
    page = Page(render_gallery([], notice="THESE CAPTIONS ARE MEANINGLESS"))
    notices = [attrs for attrs in page.all("div") if attrs.get("class") == "notice"]
    assert len(notices) == 1
    assert "THESE CAPTIONS ARE MEANINGLESS" in page.text


def test_an_image_that_cannot_be_read_gets_a_placeholder_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    assert thumbnail_data_uri(str(tmp_path / "broken.jpg")) is None
    assert thumbnail_data_uri(str(tmp_path / "gone.jpg")) is None
    assert thumbnail_data_uri("s3://bucket/key.jpg") is None


def test_a_result_list_renders_as_a_grid_in_notebooks(tmp_path: Path) -> None:
    ok = Caption(text="orange", source=str(photo(tmp_path / "a.png")), model="m", width=1, height=1, elapsed_ms=0)
    shown = ResultList([ok])._repr_html_()
    page = Page(shown)
    assert len(page.all("img")) == 1
    assert "body{" not in shown  # styles are scoped: displaying results must not restyle the notebook
