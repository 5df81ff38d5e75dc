"""Pixels in, text out, without transformers or torch: what a runtime that only has numpy needs around its model.

:class:`ImagePreprocessor` is ``ViTImageProcessor`` for this model family (resize, rescale, normalize) from
``preprocessor_config.json``; :class:`TokenDecoder` is ``tokenizer.batch_decode(..., skip_special_tokens=True)``
from ``tokenizer.json`` via the ``tokenizers`` library. Both are checked against transformers in the tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image


class ImagePreprocessor:
    """RGB images to a normalized ``(batch, 3, height, width)`` float32 array."""

    def __init__(self, config: Mapping[str, Any], *, framework: str = "np") -> None:
        self.framework = framework  # "np" (ONNX Runtime) or "pt" (the torch int8 runtime)
        size = config.get("size", {"height": 224, "width": 224})
        if isinstance(size, int):
            size = {"height": size, "width": size}
        self.size = (int(size["width"]), int(size["height"]))
        self.resample = int(config.get("resample", 2))
        self.do_resize = bool(config.get("do_resize", True))
        self.rescale = float(config.get("rescale_factor", 1 / 255)) if config.get("do_rescale", True) else 1.0
        normalize = bool(config.get("do_normalize", True))
        self.mean = [float(v) for v in config.get("image_mean", [0.5] * 3)] if normalize else [0.0] * 3
        self.std = [float(v) for v in config.get("image_std", [0.5] * 3)] if normalize else [1.0] * 3

    def pixel_array(self, images: Sequence[Image.Image]) -> np.ndarray:
        import numpy as np

        arrays = []
        for image in images:
            rgb = image.convert("RGB")
            if self.do_resize and rgb.size != self.size:
                rgb = rgb.resize(self.size, resample=self.resample)
            arrays.append(np.asarray(rgb, dtype=np.float32))
        batch = np.stack(arrays).transpose(0, 3, 1, 2) * np.float32(self.rescale)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, 3, 1, 1)
        return np.ascontiguousarray((batch - mean) / std, dtype=np.float32)

    def __call__(self, *, images: Sequence[Image.Image], return_tensors: str | None = None) -> SimpleNamespace:
        """The ``processor(images=...)`` call the :class:`~imgcaption.Captioner` makes; arrays of my framework."""
        pixels = self.pixel_array(images)
        if self.framework == "pt":
            import torch

            return SimpleNamespace(pixel_values=torch.from_numpy(pixels))
        return SimpleNamespace(pixel_values=pixels)


class TokenDecoder:
    """``tokenizer.batch_decode(..., skip_special_tokens=True)`` from ``tokenizer.json``."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path))

    def batch_decode(self, token_ids: Any, skip_special_tokens: bool = True, **_: Any) -> list[str]:
        ids = token_ids.tolist() if hasattr(token_ids, "tolist") else [list(row) for row in token_ids]
        decoded: list[str] = self._tokenizer.decode_batch(ids, skip_special_tokens=skip_special_tokens)
        return decoded
