"""Local adapters: files on disk as the image source, SQLite as the store, writers, sidecars and the HTML gallery.

Import the submodules directly (``from imgcaption.local.sqlite_store import SQLiteStore``); this package imports
nothing heavy so that the CLI's ``--help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgcaption.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from imgcaption.local.files import LocalFileSource
    from imgcaption.local.gallery import ResultList, render_gallery
    from imgcaption.local.sqlite_store import SQLiteStore

__all__ = ["LocalFileSource", "ResultList", "SQLiteStore", "render_gallery"]

_LAZY = {
    "LocalFileSource": "imgcaption.local.files",
    "ResultList": "imgcaption.local.gallery",
    "SQLiteStore": "imgcaption.local.sqlite_store",
    "render_gallery": "imgcaption.local.gallery",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=[])
