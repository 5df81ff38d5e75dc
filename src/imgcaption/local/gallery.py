"""A self-contained HTML gallery of outcomes: thumbnails embedded as data URIs, so the file can be mailed or moved.

The same rendering backs notebook display: :class:`ResultList` is a list of results whose ``_repr_html_`` shows
thumbnails with their captions in Jupyter. Everything taken from inputs (paths, captions, messages) is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from imgcaption.ports import Outcome
from imgcaption.results import Caption, CaptionFailure

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = 256
"""Longest side in pixels; about 10 KB per image as JPEG, so a gallery of a thousand photos is about 10 MB."""

THUMBNAIL_MAX_BYTES = 50 * 1024 * 1024

_PAGE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;background:#fafafa;color:#222}
h1{font-size:1.4rem;margin:0 0 .3rem} .summary{color:#555;margin-bottom:1rem}
.notice{border:3px solid #c00;background:#fee;color:#900;padding:.8rem 1rem;margin:1rem 0;font-weight:600}
"""

_GRID_CSS = """
.imgc-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:1rem}
.imgc-grid figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:6px;overflow:hidden}
.imgc-grid img{display:block;width:100%;height:200px;object-fit:contain;background:#eee}
.imgc-grid .noimg{height:200px;display:flex;align-items:center;justify-content:center;background:#eee;color:#888}
.imgc-grid figcaption{padding:.6rem .7rem;font-size:.9rem}
.imgc-grid .caption{font-weight:600;margin-bottom:.3rem}
.imgc-grid .meta{color:#666;font-size:.75rem;word-break:break-all}
.imgc-grid figure.failed{border:2px solid #c00;background:#fff5f5}
.imgc-grid .error{color:#b00;font-weight:600}
"""


def thumbnail_data_uri(path: str, size: int = THUMBNAIL_SIZE) -> str | None:
    """A JPEG data URI of the image at ``path`` (upright, at most ``size`` px), or None if it cannot be read."""
    if "://" in path or not os.path.isfile(path):
        return None
    try:
        from imgcaption.images import load_image

        image = load_image(path, max_bytes=THUMBNAIL_MAX_BYTES).image.copy()
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
    except Exception as exc:  # a thumbnail is decoration: never let it break the gallery
        logger.debug("no thumbnail for %s: %s", path, exc)
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


ImageUrl = Callable[[str], "str | None"]
"""Where the gallery shows a source's picture from (e.g. a presigned S3 URL) instead of an embedded thumbnail."""


def _figure(result: Caption | CaptionFailure, *, thumbnails: bool, image_url: ImageUrl | None = None) -> str:
    source = html.escape(result.source)
    if image_url is not None:
        uri = image_url(result.source)
    else:
        uri = thumbnail_data_uri(result.source) if thumbnails else None
    alt = html.escape(getattr(result, "text", "") or result.source)
    picture = (
        f'<img src="{html.escape(uri)}" alt="{alt}" loading="lazy">' if uri else '<div class="noimg">no preview</div>'
    )
    model = html.escape(result.model + (f"@{result.revision[:12]}" if result.revision else ""))
    if isinstance(result, Caption):
        body = (
            f'<div class="caption">{html.escape(result.text)}</div>'
            f'<div class="meta">{source}<br>{result.width}×{result.height} · {model} · {result.precision}</div>'
        )
        css_class = "ok"
    else:
        body = (
            f'<div class="error">{html.escape(result.error_type)}: {html.escape(result.message)}</div>'
            f'<div class="meta">{source}<br>{model}</div>'
        )
        css_class = "failed"
    return f'<figure class="{css_class}">{picture}<figcaption>{body}</figcaption></figure>'


def _results(items: Iterable[Outcome | Caption | CaptionFailure]) -> list[Caption | CaptionFailure]:
    return [item.result if isinstance(item, Outcome) else item for item in items]


def gallery_grid(
    items: Iterable[Outcome | Caption | CaptionFailure], *, thumbnails: bool = True, image_url: ImageUrl | None = None
) -> str:
    """Just the grid of figures (failures first), for embedding in a page or a notebook cell."""
    results = _results(items)
    ordered = [r for r in results if not r.ok] + [r for r in results if r.ok]
    figures = "\n".join(_figure(result, thumbnails=thumbnails, image_url=image_url) for result in ordered)
    return f'<div class="imgc-grid">\n{figures}\n</div>'


def render_gallery(
    items: Iterable[Outcome | Caption | CaptionFailure],
    *,
    title: str = "imgcaption gallery",
    notice: str | None = None,
    thumbnails: bool = True,
    image_url: ImageUrl | None = None,
) -> str:
    """A complete HTML document; ``notice`` is shown as a prominent warning (e.g. "random weights"); ``image_url``,
    when given, says where each source's picture is (the browser fetches it) instead of embedding thumbnails."""
    results = _results(items)
    failed = sum(1 for result in results if not result.ok)
    models = sorted({result.model for result in results})
    summary = (
        f"{len(results) - failed} captioned, {failed} failed · model: {html.escape(', '.join(models) or '-')} · "
        f"generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"
    )
    banner = f'<div class="notice">{html.escape(notice)}</div>' if notice else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_PAGE_CSS}{_GRID_CSS}</style></head>\n"
        f'<body><h1>{html.escape(title)}</h1><div class="summary">{summary}</div>{banner}\n'
        f"{gallery_grid(results, thumbnails=thumbnails, image_url=image_url)}\n</body></html>\n"
    )


class ResultList(list[Caption | CaptionFailure]):
    """A list of results that shows as a thumbnail grid in Jupyter: ``ResultList(captioner.caption_many(paths))``."""

    def _repr_html_(self) -> str:
        return f"<style>{_GRID_CSS}</style>{gallery_grid(self)}"
