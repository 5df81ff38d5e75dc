"""Fast modes: the same model computing in lower precision, opt-in because captions may differ from fp32.

``int8``: int8 weights for every linear layer (per output channel), activations quantized on the fly, run by the
transformers-free runtime in :mod:`imgcaption.artifact`. GPT-2 uses ``transformers`` ``Conv1D`` (a transposed
linear), which is converted to ``nn.Linear`` before quantizing. Quantizing at load costs seconds and about 2 GB;
``imgcaption optimize`` saves the result once so that loading it is fast (:func:`imgcaption.artifact.save_artifact`).

``fp32`` is the published model, decoded by :func:`imgcaption.decoding.decode` with the same tokens as ``generate``.
"""

from __future__ import annotations

from typing import Any

from imgcaption.errors import ConfigurationError
from imgcaption.generation import Precision
from imgcaption.model_loading import LoadedModel


def conv1d_to_linear(module: Any) -> Any:
    """Replace every GPT-2 ``Conv1D`` in ``module`` by an equivalent ``nn.Linear`` (in place)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    for name, child in list(module.named_children()):
        if isinstance(child, Conv1D):
            in_features, out_features = child.weight.shape
            linear = torch.nn.Linear(in_features, out_features, bias=child.bias is not None)
            with torch.no_grad():
                linear.weight.copy_(child.weight.t())
                if child.bias is not None:
                    linear.bias.copy_(child.bias)
            setattr(module, name, linear)
        else:
            conv1d_to_linear(child)
    return module


def loaded_precision(loaded: LoadedModel) -> Precision:
    """The precision a loaded model already has: ``int8`` for an ``imgcaption optimize`` artifact, else ``fp32``."""
    return "int8" if loaded.provenance.get("precision") == "int8" else "fp32"


def prepare_for_precision(loaded: LoadedModel, precision: Precision) -> LoadedModel:
    """The model computing in ``precision``; a pre-quantized artifact is used as it is."""
    have = loaded_precision(loaded)
    if have == precision:
        return loaded
    if have != "fp32":
        raise ConfigurationError(
            f"{loaded.model_id} was loaded from a pre-quantized {have} artifact and cannot compute in {precision}; "
            f"use precision={have!r} (IMGCAPTION_PRECISION={have}) or point at the fp32 model directory"
        )
    if precision == "int8":
        from imgcaption.artifact import int8_from_loaded

        return int8_from_loaded(loaded)
    raise ConfigurationError(f"precision {precision!r} is not available in this version; use fp32 or int8")
