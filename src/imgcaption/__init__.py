"""imgcaption: captions for folders and buckets of images.

    >>> from imgcaption import Captioner
    >>> captioner = Captioner.from_pretrained("nlpconnect/vit-gpt2-image-captioning")  # or a local directory
    >>> captioner.caption("photo.jpg").text

Importing this package is cheap: torch and transformers (or ONNX Runtime) load only when a model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from imgcaption.results import Caption, CaptionFailure, CaptionResult
from imgcaption.settings import Settings

if TYPE_CHECKING:
    from imgcaption.captioner import Captioner
    from imgcaption.images import LoadedImage, load_image

__version__ = installed_version()

__all__ = [
    "Caption",
    "CaptionFailure",
    "CaptionResult",
    "Captioner",
    "CaptioningError",
    "ConfigurationError",
    "GenerationOptions",
    "ImageDecodeError",
    "ImageError",
    "ImageNotFoundError",
    "ImageTooLargeError",
    "ImgCaptionError",
    "LoadedImage",
    "ModelLoadError",
    "Precision",
    "Settings",
    "SourceError",
    "StoreError",
    "UnsupportedImageError",
    "errors",
    "load_image",
]

_LAZY = {
    "Captioner": "imgcaption.captioner",
    "LoadedImage": "imgcaption.images",
    "load_image": "imgcaption.images",
}


def __getattr__(name: str) -> Any:
    """Import heavy modules (Pillow, numpy) on first use, so ``import imgcaption`` stays fast."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'imgcaption' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
