"""imgcaption: captions for folders and buckets of images.

    >>> from imgcaption import Captioner
    >>> captioner = Captioner.from_pretrained("nlpconnect/vit-gpt2-image-captioning")  # or a local directory
    >>> captioner.caption("photo.jpg").text

Importing this package is cheap: torch and transformers (or ONNX Runtime) load only when a model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgcaption import errors
from imgcaption.distribution import installed_version
from imgcaption.errors import (
    CaptioningError,
    ConfigurationError,
    ImageDecodeError,
    ImageError,
    ImageNotFoundError,
    ImageTooLargeError,
    ImgCaptionError,
    ModelLoadError,
    SourceError,
    StoreError,
    UnsupportedImageError,
)
from imgcaption.generation import GenerationOptions, Precision
from imgcaption.lazy_exports import lazy_exports
from imgcaption.results import Caption, CaptionFailure, CaptionResult
from imgcaption.settings import Settings

if TYPE_CHECKING:
    from imgcaption.captioner import Captioner
    from imgcaption.images import LoadedImage, load_image
    from imgcaption.local.files import LocalFileSource
    from imgcaption.local.gallery import ResultList
    from imgcaption.local.sqlite_store import SQLiteStore
    from imgcaption.pipeline import Pipeline, PipelineSummary
    from imgcaption.ports import CaptionSignature, CaptionStore, ImageRef, ImageSource, Outcome, Skipped

__version__ = installed_version()

# Imported on first use: they pull in Pillow, numpy or sqlite3, which a bare `import imgcaption` does not need.
_LAZY = {
    "Captioner": "imgcaption.captioner",
    "LoadedImage": "imgcaption.images",
    "load_image": "imgcaption.images",
    "Pipeline": "imgcaption.pipeline",
    "PipelineSummary": "imgcaption.pipeline",
    "CaptionSignature": "imgcaption.ports",
    "CaptionStore": "imgcaption.ports",
    "ImageRef": "imgcaption.ports",
    "ImageSource": "imgcaption.ports",
    "Outcome": "imgcaption.ports",
    "Skipped": "imgcaption.ports",
    "LocalFileSource": "imgcaption.local.files",
    "ResultList": "imgcaption.local.gallery",
    "SQLiteStore": "imgcaption.local.sqlite_store",
}

__all__ = [
    "Caption",
    "CaptionFailure",
    "CaptionResult",
    "CaptionSignature",
    "CaptionStore",
    "Captioner",
    "CaptioningError",
    "ConfigurationError",
    "GenerationOptions",
    "ImageDecodeError",
    "ImageError",
    "ImageNotFoundError",
    "ImageRef",
    "ImageSource",
    "ImageTooLargeError",
    "ImgCaptionError",
    "LoadedImage",
    "LocalFileSource",
    "ModelLoadError",
    "Outcome",
    "Pipeline",
    "PipelineSummary",
    "Precision",
    "ResultList",
    "SQLiteStore",
    "Settings",
    "Skipped",
    "SourceError",
    "StoreError",
    "UnsupportedImageError",
    "__version__",
    "errors",
    "load_image",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=[name for name in __all__ if name not in _LAZY])
