"""The one exception tree of imgcaption.

Every failure a caller can act on is an :class:`ImgCaptionError`. Each error carries the ``source`` it is about
(a path, an ``s3://`` URI, or a label such as ``<bytes>``) so a log line or a stored failure names the input.
``retryable`` says whether trying the same input again later may succeed (a throttled table, a 5xx from S3);
bad input is never retryable, so it is recorded once instead of bouncing through a queue.

Hierarchy::

    ImgCaptionError
    ├── ImageError                 the input is not a usable image
    │   ├── ImageDecodeError       empty, truncated, corrupt, undecodable
    │   ├── ImageTooLargeError     over the byte cap or the pixel cap (decompression bombs)
    │   └── UnsupportedImageError  not an image, or a format this install cannot read
    ├── ImageNotFoundError         the file or object does not exist (any more)
    ├── ModelLoadError             the model directory or hub id could not be loaded
    ├── CaptioningError            the model failed on an image that decoded fine
    ├── WorkerCrashedError         the process died every time it worked on this image alone (OOM, segfault, timeout)
    ├── StoreError                 recording an outcome failed
    ├── SourceError                listing or reading inputs failed (permissions, network)
    └── ConfigurationError         settings that cannot work together
"""

from __future__ import annotations

__all__ = [
    "CaptioningError",
    "ConfigurationError",
    "ImageDecodeError",
    "ImageError",
    "ImageNotFoundError",
    "ImageTooLargeError",
    "ImgCaptionError",
    "ModelLoadError",
    "SourceError",
    "StoreError",
    "UnsupportedImageError",
    "WorkerCrashedError",
]


class ImgCaptionError(Exception):
    """Root of every error imgcaption raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, source: str | None = None, retryable: bool | None = None) -> None:
        self.message = message
        self.source = source
        if retryable is not None:
            self.retryable = retryable
        super().__init__(f"{source}: {message}" if source else message)


class ImageError(ImgCaptionError):
    """The input is not a usable image. Retrying will not help."""


class ImageDecodeError(ImageError):
    """The bytes look like an image but cannot be decoded (empty, truncated, corrupt)."""


class ImageTooLargeError(ImageError):
    """The input exceeds the byte cap or the pixel cap; refused before it is read or decoded in full."""


class UnsupportedImageError(ImageError):
    """The input is not an image, or is in a format this installation cannot read."""


class ImageNotFoundError(ImgCaptionError):
    """The file or object does not exist, e.g. deleted before it was processed."""


class ModelLoadError(ImgCaptionError):
    """The captioning model could not be loaded. The message says what was tried and how to fix it."""


class CaptioningError(ImgCaptionError):
    """Inference failed for an image that decoded fine."""


class WorkerCrashedError(ImgCaptionError):
    """The process died (out of memory, a crash in native code, a hard timeout) each time it captioned this input
    alone. Recorded instead of retrying forever; not retryable: the same bytes would kill the next worker too."""


class StoreError(ImgCaptionError):
    """Recording an outcome failed. Often transient (``retryable``)."""


class SourceError(ImgCaptionError):
    """Listing or reading inputs failed for a reason other than a bad image."""


class ConfigurationError(ImgCaptionError):
    """Settings or arguments that cannot work together."""
