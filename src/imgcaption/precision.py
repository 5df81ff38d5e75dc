"""Fast modes: the same model computing in lower precision, opt-in because captions may differ from fp32.

``int8``: dynamic int8 quantization of every linear layer. GPT-2 uses ``transformers`` ``Conv1D`` (a transposed
linear) that ``quantize_dynamic`` skips, so those are converted to ``nn.Linear`` first.
"""

from __future__ import annotations

import dataclasses
import warnings
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


def quantize_int8(model: Any) -> Any:
    import torch

    conv1d_to_linear(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao points to torchao; the API still works
        return torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            model, {torch.nn.Linear}, dtype=torch.qint8
        )


def prepare_for_precision(loaded: LoadedModel, precision: Precision) -> LoadedModel:
    if precision == "int8":
        return dataclasses.replace(loaded, model=quantize_int8(loaded.model))
    raise ConfigurationError(f"precision {precision!r} is not available in this version; use fp32 or int8")
