"""The int8 runtime: vit-gpt2 with int8 weights, as a small module tree that needs torch but not transformers.

Why a runtime of our own instead of ``quantize_dynamic`` on the transformers model:

* cold start — importing transformers and building its model classes costs more than the whole 1.5 s budget from
  process start to first caption; this module imports torch, ``tokenizers`` and Pillow only;
* a loadable artifact — ``quantize_dynamic`` produces fbgemm-packed weights that cannot go in a safetensors file.
  :func:`.export.save_torch_artifact` stores the int8 weights with their per-channel scales instead, and
  :func:`load_artifact` packs them at load time for whatever quantized engine the machine has (fbgemm on x86,
  qnnpack on arm);
* memory — the tied GPT-2 embedding is kept once, as the int8 rows of the LM head, not as 154 MB of fp32.

The tree mirrors the attribute names of transformers' ``VisionEncoderDecoderModel`` (ViT + GPT-2), so
:class:`~.vitgpt2_exact.FastDecoder` drives both, and the state-dict keys are the same.
Quantization is per output channel, symmetric, int8 weights with dynamically quantized activations — what
``quantize_dynamic`` with ``per_channel_dynamic_qconfig`` does.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from imgcaption.backends.base import LoadedModel, TokenGenerator, read_artifact_configs
from imgcaption.backends.numpy_io import ImagePreprocessor, TokenDecoder
from imgcaption.errors import ConfigurationError, ModelLoadError

if TYPE_CHECKING:
    from collections.abc import Mapping


ARTIFACT_FORMAT = "imgcaption-int8/1"
"""Value of ``format`` in the provenance file of a directory made by :func:`.export.save_torch_artifact`."""
WEIGHTS_FILE = "model-int8.safetensors"
_LM_HEAD = "decoder.lm_head"


# ------------------------------------------------------------------------------------------------ building blocks


class QuantizedLinear(nn.Module):
    """``y = x W^T + b`` with int8 ``W`` (per output channel) and activations quantized on the fly."""

    def __init__(self, qweight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.in_features = int(qweight.shape[1])
        self.out_features = int(qweight.shape[0])
        self._packed = torch.ops.quantized.linear_prepack(qweight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = torch.ops.quantized.linear_dynamic(x, self._packed, reduce_range=True)
        return y


class Int8Embedding(nn.Module):
    """Embedding rows dequantized on lookup from the int8 LM-head weight (GPT-2 ties the two)."""

    def __init__(self, rows: torch.Tensor, scales: torch.Tensor) -> None:
        super().__init__()
        self.rows = rows  # int8 (vocab, width); symmetric quantization, so zero points are 0
        self.scales = scales.to(torch.float32)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.rows[ids].to(torch.float32) * self.scales[ids].unsqueeze(-1)


def quantize_weight(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8, with torch's own observer (what ``quantize_dynamic`` would use)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao points to torchao; the API still works
        from torch.ao.quantization.observer import PerChannelMinMaxObserver

        observer = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
        observer(weight)
        scales, zero_points = observer.calculate_qparams()
        # torch >= 2.10 warns that quantized tensors will move to torchao; they are still what fbgemm packs
        warnings.simplefilter("ignore", UserWarning)
        return torch.quantize_per_channel(weight, scales.to(torch.float64), zero_points, 0, torch.qint8)


# ------------------------------------------------------------------------------------------------ ViT encoder


class _ViTAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.q_proj: nn.Module = nn.Identity()
        self.k_proj: nn.Module = nn.Identity()
        self.v_proj: nn.Module = nn.Identity()
        self.o_proj: nn.Module = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape

        def split(states: torch.Tensor) -> torch.Tensor:
            return states.view(batch, length, self.heads, self.head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)))
        result: torch.Tensor = self.o_proj(out.transpose(1, 2).reshape(batch, length, width))
        return result


class _ViTLayer(nn.Module):
    def __init__(self, width: int, heads: int, eps: float) -> None:
        super().__init__()
        self.layernorm_before = nn.LayerNorm(width, eps=eps)
        self.layernorm_after = nn.LayerNorm(width, eps=eps)
        self.attention = _ViTAttention(width, heads)
        self.mlp = _ViTMLP()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention(self.layernorm_before(x)) + x
        result: torch.Tensor = self.mlp(self.layernorm_after(x)) + x
        return result


class _ViTMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1: nn.Module = nn.Identity()
        self.fc2: nn.Module = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.fc2(F.gelu(self.fc1(x)))
        return result


class _PatchEmbeddings(nn.Module):
    def __init__(self, channels: int, width: int, patch: int) -> None:
        super().__init__()
        self.projection = nn.Conv2d(channels, width, kernel_size=patch, stride=patch)


class _ViTEmbeddings(nn.Module):
    def __init__(self, width: int, patch: int, channels: int, patches: int) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width), requires_grad=False)
        self.position_embeddings = nn.Parameter(torch.zeros(1, patches + 1, width), requires_grad=False)
        self.patch_embeddings = _PatchEmbeddings(channels, width, patch)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embeddings.projection(pixel_values).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return torch.cat((cls, patches), dim=1) + self.position_embeddings


class LiteViT(nn.Module):
    """transformers' ``ViTModel`` forward (pre-norm blocks, final layernorm), without the pooler."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        width, eps = int(config["hidden_size"]), float(config.get("layer_norm_eps", 1e-12))
        patches = (int(config["image_size"]) // int(config["patch_size"])) ** 2
        self.embeddings = _ViTEmbeddings(width, int(config["patch_size"]), int(config.get("num_channels", 3)), patches)
        self.layers = nn.ModuleList(
            _ViTLayer(width, int(config["num_attention_heads"]), eps) for _ in range(int(config["num_hidden_layers"]))
        )
        self.layernorm = nn.LayerNorm(width, eps=eps)

    def forward(self, pixel_values: torch.Tensor) -> SimpleNamespace:
        hidden = self.embeddings(pixel_values)
        for layer in self.layers:
            hidden = layer(hidden)
        return SimpleNamespace(last_hidden_state=self.layernorm(hidden))


# ------------------------------------------------------------------------------------------------ GPT-2 decoder


class _GPT2Attention(nn.Module):
    def __init__(self, head_dim: int, *, cross: bool) -> None:
        super().__init__()
        self.scaling = head_dim**-0.5
        self.c_attn: nn.Module = nn.Identity()
        self.c_proj: nn.Module = nn.Identity()
        if cross:
            self.q_attn: nn.Module = nn.Identity()


class _GPT2Block(nn.Module):
    def __init__(self, width: int, heads: int, eps: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=eps)
        self.ln_cross_attn = nn.LayerNorm(width, eps=eps)
        self.ln_2 = nn.LayerNorm(width, eps=eps)
        self.attn = _GPT2Attention(width // heads, cross=False)
        self.crossattention = _GPT2Attention(width // heads, cross=True)
        self.mlp = _GPT2MLP()


class _GPT2MLP(nn.Module):
    """Called piecewise by FastDecoder (``c_fc``, ``act``, ``c_proj``), like transformers' GPT2MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.c_fc: nn.Module = nn.Identity()
        self.c_proj: nn.Module = nn.Identity()

    @staticmethod
    def act(x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")  # GPT-2's "gelu_new", as one fused kernel


class LiteGPT2(nn.Module):
    """The parts of ``GPT2LMHeadModel`` that :class:`~.vitgpt2_exact.FastDecoder` calls, step by step."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        width, heads = int(config["n_embd"]), int(config["n_head"])
        eps = float(config.get("layer_norm_epsilon", 1e-5))
        self.config = SimpleNamespace(n_embd=width, n_head=heads, n_positions=int(config["n_positions"]))
        self.transformer = nn.Module()
        self.transformer.wte = nn.Identity()
        self.transformer.wpe = nn.Embedding(int(config["n_positions"]), width)
        self.transformer.h = nn.ModuleList(_GPT2Block(width, heads, eps) for _ in range(int(config["n_layer"])))
        self.transformer.ln_f = nn.LayerNorm(width, eps=eps)
        self.lm_head: nn.Module = nn.Identity()


class LiteCaptioningModel(nn.Module):
    """Encoder, decoder and generation settings: what :func:`.vitgpt2_exact.decode` needs, nothing else."""

    def __init__(self, config: Mapping[str, Any], generation_config: Mapping[str, Any]) -> None:
        super().__init__()
        encoder, decoder = config["encoder"], config["decoder"]
        if encoder.get("model_type") != "vit" or decoder.get("model_type") != "gpt2":
            raise ConfigurationError(
                f"int8 supports ViT + GPT-2 models; this one is {encoder.get('model_type')} + "
                f"{decoder.get('model_type')}"
            )
        if int(encoder["hidden_size"]) != int(decoder["n_embd"]):
            raise ConfigurationError("int8 needs the encoder and decoder widths to match")
        self.encoder = LiteViT(encoder)
        self.decoder = LiteGPT2(decoder)
        settings = {
            "decoder_start_token_id": config.get("decoder_start_token_id"),
            "eos_token_id": decoder.get("eos_token_id"),
            "pad_token_id": config.get("pad_token_id", decoder.get("pad_token_id")),
            "length_penalty": None,
            "early_stopping": None,
        }
        settings.update({k: v for k, v in generation_config.items() if k in settings and v is not None})
        self.generation_config = SimpleNamespace(**settings)


def conv1d_to_linear(module: Any) -> Any:
    """Replace every GPT-2 ``Conv1D`` in ``module`` by an equivalent ``nn.Linear`` (in place)."""
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


def _quantizable(name: str, module: Any) -> bool:
    return isinstance(module, nn.Linear) and not name.startswith("encoder.pooler")


def int8_tensors(model: Any) -> dict[str, torch.Tensor]:
    """Flat tensors of an fp32 transformers vit-gpt2: linear weights as int8 + per-channel scales, the rest fp32.

    Converts GPT-2's ``Conv1D`` to ``nn.Linear`` first (in place), as ``quantize_dynamic`` would need too.
    """
    decoder = model.decoder
    if decoder.lm_head.weight is not decoder.transformer.wte.weight:
        raise ConfigurationError("int8 needs GPT-2's LM head tied to its token embedding, as in vit-gpt2")
    if model.config.encoder.hidden_act != "gelu" or model.config.decoder.activation_function != "gelu_new":
        raise ConfigurationError("int8 supports ViT with gelu and GPT-2 with gelu_new")
    conv1d_to_linear(model)
    tensors: dict[str, torch.Tensor] = {}
    quantized: set[str] = set()
    for name, module in model.named_modules():
        if _quantizable(name, module):
            qweight = quantize_weight(module.weight.detach())
            tensors[f"{name}.qweight"] = qweight.int_repr()
            tensors[f"{name}.scales"] = qweight.q_per_channel_scales().to(torch.float32)
            if module.bias is not None:
                tensors[f"{name}.bias"] = module.bias.detach()
            quantized.add(name)
    for key, value in model.state_dict().items():
        owner = key.rpartition(".")[0]
        if owner in quantized or key.startswith(("encoder.pooler", "decoder.transformer.wte")):
            continue
        tensors[key] = value.detach()
    return {key: value.contiguous() for key, value in tensors.items()}


def build_lite_model(
    config: Mapping[str, Any], generation_config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
) -> LiteCaptioningModel:
    """Assemble the runtime from :func:`int8_tensors` output (packing the int8 weights for this machine)."""
    model = LiteCaptioningModel(config, generation_config)
    plain: dict[str, torch.Tensor] = {}
    names = {key.rpartition(".")[0] for key in tensors if key.endswith(".qweight")}
    for key, value in tensors.items():
        if key.rpartition(".")[0] not in names:
            plain[key] = value
    for name in sorted(names):
        rows, scales = tensors[f"{name}.qweight"], tensors[f"{name}.scales"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # see quantize_weight
            qweight = torch._make_per_channel_quantized_tensor(
                rows, scales.to(torch.float64), torch.zeros(rows.shape[0], dtype=torch.int64), 0
            )
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        if not isinstance(getattr(parent, child, None), nn.Identity):
            raise ModelLoadError(f"unexpected int8 weight {name!r} in this artifact")
        setattr(parent, child, QuantizedLinear(qweight, tensors.get(f"{name}.bias")))
        if name == _LM_HEAD:
            model.decoder.transformer.wte = Int8Embedding(rows, scales)
    missing, unexpected = model.load_state_dict(plain, strict=False, assign=True)
    placeholders = [name for name, module in model.named_modules() if isinstance(module, nn.Identity)]
    if missing or unexpected or placeholders:
        raise ModelLoadError(
            f"int8 weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"without weights {placeholders[:5]}"
        )
    model.eval()
    return model


# ------------------------------------------------------------------------------------------------ artifact files


def is_artifact(provenance: Mapping[str, Any]) -> bool:
    return provenance.get("format") == ARTIFACT_FORMAT


def load_artifact(directory: Path, provenance: Mapping[str, Any], model_id: str, revision: str | None) -> LoadedModel:
    """Load a directory made by :func:`.export.save_torch_artifact`: no transformers import, no fp32 weights."""
    from safetensors.torch import load_file

    if not is_artifact(provenance):
        raise ModelLoadError(
            f"{directory} holds a model in format {provenance.get('format')!r}; this imgcaption reads "
            f"{ARTIFACT_FORMAT!r}. Rebuild it with `imgcaption optimize MODEL_DIR OUT_DIR`.",
            source=str(directory),
        )
    try:
        config, generation_config = read_artifact_configs(directory)
        preprocessor = ImagePreprocessor(
            json.loads((directory / "preprocessor_config.json").read_text()), framework="pt"
        )
        tokens = TokenDecoder(directory / "tokenizer.json")
        tensors = load_file(str(directory / str(provenance.get("weights", WEIGHTS_FILE))))
        model = build_lite_model(config, generation_config, tensors)
    except (ModelLoadError, ConfigurationError):
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"could not load the int8 artifact in {directory}: {type(exc).__name__}: {exc}. "
            "Rebuild it with `imgcaption optimize MODEL_DIR OUT_DIR`.",
            source=str(directory),
        ) from exc
    return LoadedModel(model, preprocessor, tokens, model_id, revision, dict(provenance), lite_generator(model))


def int8_from_loaded(loaded: LoadedModel) -> LoadedModel:
    """In-memory int8 of a loaded fp32 transformers model (costs seconds; prefer a saved artifact)."""
    import dataclasses

    config = loaded.model.config.to_dict()
    generation_config = loaded.model.generation_config.to_dict()
    with torch.inference_mode():
        tensors = int8_tensors(loaded.model)
    model = build_lite_model(config, generation_config, tensors)
    return dataclasses.replace(loaded, model=model, generate_ids=lite_generator(model))


def lite_generator(model: LiteCaptioningModel) -> TokenGenerator:
    """The exact decoder's search over the int8 modules; there is no ``generate`` to fall back on."""
    from functools import partial

    from imgcaption.backends.vitgpt2_exact import decode

    return partial(decode, model, has_generate=False)
