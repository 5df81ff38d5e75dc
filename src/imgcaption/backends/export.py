"""``imgcaption optimize``: the int8 artifacts the two int8 backends load, built once from the fp32 model.

:func:`save_torch_artifact` writes int8 safetensors for :mod:`.torch_int8`;
:func:`save_onnx_artifact` exports vit-gpt2 to two int8 ONNX graphs that :mod:`.onnx_int8` runs
without torch.

Why two graphs, and why these:

* ``encoder.onnx`` — pixels to the cross-attention keys and values of every decoder layer (``cross_key_0``,
  ``cross_value_0``, … each ``(images, heads, patches, head_dim)``): the ViT and the twelve ``c_attn`` projections
  run once per image;
* ``decoder.onnx`` — one GPT-2 step for every row (images × beams): the new token, its position, the self-attention
  history buffers (full caption length, written in place by ONNX Runtime's fused attention kernels, which both
  attentions run on: see :func:`_attention_functions`) and the cross keys/values in; each row's top-``k``
  log-probabilities and their ids out (and the same history buffers, as the kernel's ``present`` outputs). The beams
  of an image read its cross keys/values together, as the query length of one attention, so nothing is copied per
  beam. Every layer's tensors are separate inputs and outputs: slicing one stacked tensor inside the graph made ONNX
  Runtime copy all of it on every step (half the step time, measured). Returning the top ``k`` instead of 50,257
  logits per row is all a beam search needs (:mod:`.numpy_search`).

Both are exported from the fp32 model with torch's TorchScript exporter, quantized by ONNX Runtime's dynamic
quantization (MatMul weights int8 per output channel, activations quantized on the fly, as torch's int8 mode;
see :func:`quantize_graphs`), then given ONNX Runtime's portable fusions once and saved, so that loading only adds
the machine-specific ones. Exporting needs torch, transformers, ``onnx`` and ``onnxruntime``
(``pip install 'imgcaption-toolkit[export]'``); running needs only ``onnxruntime`` and numpy.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

from imgcaption.backends.cpu_int8 import Int8Target, cpu_flags, reduce_range
from imgcaption.backends.cpu_int8 import int8_target as int8_target_of
from imgcaption.backends.onnx_int8 import DECODER_FILE, ENCODER_FILE, ONNX_FORMAT, layer_names
from imgcaption.distribution import install_hint
from imgcaption.errors import ConfigurationError

OPSET = 17


def _graphs(model: Any) -> tuple[Any, Any]:
    """The two torch modules to export, built on the fp32 weights of a transformers vit-gpt2."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    from imgcaption.backends.torch_int8 import LiteCaptioningModel, conv1d_to_linear

    conv1d_to_linear(model)
    SelfAttention, CrossAttention = _attention_functions()
    lite = LiteCaptioningModel(model.config.to_dict(), model.generation_config.to_dict())
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and not name.startswith("encoder.pooler"):
            parent, _, child = name.rpartition(".")
            setattr(lite.get_submodule(parent), child, module)
    lite.decoder.transformer.wte = model.decoder.transformer.wte
    lite.decoder.lm_head = model.decoder.lm_head
    state = {key: value for key, value in model.state_dict().items() if not key.startswith("encoder.pooler")}
    lite.load_state_dict(state, strict=True)
    lite.eval()
    transformer: Any = lite.decoder.transformer
    width, heads = lite.decoder.config.n_embd, lite.decoder.config.n_head
    head_dim, layers = width // heads, len(transformer.h)

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vit = lite.encoder
            self.blocks = transformer.h

        def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
            encoded = self.vit(pixel_values).last_hidden_state
            images = encoded.shape[0]
            outputs = []
            for block in self.blocks:
                key, value = block.crossattention.c_attn(encoded).split(width, dim=-1)
                outputs += [split_heads(key, images), split_heads(value, images)]
            return tuple(outputs)

    def split_heads(states: torch.Tensor, rows: int) -> torch.Tensor:
        return states.view(rows, -1, heads, head_dim).transpose(1, 2).contiguous()

    class DecoderStep(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer: Any = transformer
            self.lm_head: Any = lite.decoder.lm_head

        def forward(
            self, tokens: torch.Tensor, position: torch.Tensor, k: Any, *caches: torch.Tensor
        ) -> tuple[Any, ...]:
            past, cross = caches[: 2 * layers], caches[2 * layers :]
            rows, images = tokens.shape[0], cross[0].shape[0]
            beams = rows // images
            hidden = self.transformer.wte(tokens) + self.transformer.wpe(position)
            filled = (tokens * 0 + position).to(torch.int32)  # every row has the same history length
            presents: list[torch.Tensor] = []
            for index, block in enumerate(self.transformer.h):
                query, key, value = block.attn.c_attn(block.ln_1(hidden)).split(width, dim=-1)
                attended, keys, values = SelfAttention.apply(
                    query.view(rows, 1, width),
                    key.view(rows, 1, width),
                    value.view(rows, 1, width),
                    past[2 * index],
                    past[2 * index + 1],
                    filled,
                    heads,
                )
                presents += [keys, values]
                hidden = block.attn.c_proj(attended.reshape(rows, width)) + hidden
                cross_query = block.crossattention.q_attn(block.ln_cross_attn(hidden)).view(images, beams, width)
                attended = CrossAttention.apply(cross_query, cross[2 * index], cross[2 * index + 1], heads)
                hidden = hidden + block.crossattention.c_proj(attended.reshape(rows, width))
                mlp = block.mlp
                hidden = hidden + mlp.c_proj(F.gelu(mlp.c_fc(block.ln_2(hidden)), approximate="tanh"))
            log_probs = torch.log_softmax(self.lm_head(self.transformer.ln_f(hidden)), dim=-1)
            scores, ids = torch.topk(log_probs, k)
            return (scores, ids, *presents)

    return Encoder().eval(), DecoderStep().eval()


def _attention_functions() -> tuple[Any, Any]:
    """The decoder's two attentions as torch functions that export to ONNX Runtime's fused CPU attention kernels.

    * ``SelfAttention`` → ``com.microsoft.GroupQueryAttention`` (with as many key/value heads as query heads: plain
      multi-head attention). The history is a buffer of the full caption length; the kernel writes this step's key
      and value into it at ``filled`` and attends over the filled part. Bound as both input and output
      (:class:`~imgcaption.backends.onnx_int8.DecoderSteps`), the buffer is written in place: no concatenation, and
      no history copied out of the graph each step.
    * ``CrossAttention`` → ``com.microsoft.MultiHeadAttention`` over the keys and values already split into heads
      (the encoder graph's outputs), an image's beams as the query length: one node instead of a reshape, two
      transposes, two batched MatMuls and a softmax per layer. (Measured on AVX2 as fast as those, not faster: each
      image's keys and values are read once per step by its 4 beams either way, which bounds it by memory.)

    Their ``forward`` is the same computation in torch, so the module stays runnable (and readable) as a reference.
    """
    import torch

    class SelfAttention(torch.autograd.Function):
        @staticmethod
        def forward(
            ctx: Any,
            query: torch.Tensor,
            key: torch.Tensor,
            value: torch.Tensor,
            past_key: torch.Tensor,
            past_value: torch.Tensor,
            filled: torch.Tensor,
            heads: int,
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            rows, width = query.shape[0], query.shape[-1]
            head_dim, position = width // heads, int(filled[0])
            keys, values = past_key.clone(), past_value.clone()
            keys[:, :, position] = key.view(rows, heads, head_dim)
            values[:, :, position] = value.view(rows, heads, head_dim)
            scores = query.view(rows, heads, 1, head_dim) @ keys[:, :, : position + 1].transpose(-1, -2)
            weights = torch.softmax(scores * head_dim**-0.5, dim=-1)
            return (weights @ values[:, :, : position + 1]).reshape(rows, 1, width), keys, values

        @staticmethod
        def symbolic(
            g: Any, query: Any, key: Any, value: Any, past_key: Any, past_value: Any, filled: Any, heads: int
        ) -> Any:
            one = g.op("Constant", value_t=torch.tensor(1, dtype=torch.int32))
            total = g.op("Add", g.op("ReduceMax", filled, keepdims_i=0), one)
            outputs = g.op(
                "com.microsoft::GroupQueryAttention",
                query,
                key,
                value,
                past_key,
                past_value,
                filled,
                total,
                num_heads_i=heads,
                kv_num_heads_i=heads,
                outputs=3,
            )
            for output, like in zip(outputs, (query, past_key, past_value), strict=True):
                output.setType(like.type())
            return outputs

    class CrossAttention(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, heads: int) -> torch.Tensor:
            images, beams, width = query.shape
            split = query.view(images, beams, heads, width // heads).transpose(1, 2)
            weights = torch.softmax((split @ key.transpose(-1, -2)) * (width // heads) ** -0.5, dim=-1)
            return (weights @ value).transpose(1, 2).reshape(images, beams, width)

        @staticmethod
        def symbolic(g: Any, query: Any, key: Any, value: Any, heads: int) -> Any:
            output = g.op("com.microsoft::MultiHeadAttention", query, key, value, num_heads_i=heads)
            output.setType(query.type())
            return output

    return SelfAttention, CrossAttention


def export_graphs(model: Any, directory: Path, image_size: int) -> None:
    """Write fp32 ``encoder.onnx`` and ``decoder.onnx`` for a transformers vit-gpt2 into ``directory``."""
    import torch

    encoder, step = _graphs(model)
    config = model.decoder.config
    layers, heads, head_dim = config.n_layer, config.n_head, config.n_embd // config.n_head
    pixels = torch.zeros(2, 3, image_size, image_size)
    cross_names, past_names, present_names = (layer_names(prefix, layers) for prefix in ("cross", "past", "present"))
    with torch.no_grad(), warnings.catch_warnings():
        # torch 2.13 calls the TorchScript exporter deprecated in favour of the dynamo one, which needs onnxscript
        # and exports this model slower; the TorchScript one is still supported and its graphs are what we test.
        warnings.simplefilter("ignore")
        cross = encoder(pixels)
        torch.onnx.export(
            encoder,
            (pixels,),
            str(directory / ENCODER_FILE),
            input_names=["pixel_values"],
            output_names=cross_names,
            dynamic_axes={"pixel_values": {0: "images"}, **{name: {0: "images"} for name in cross_names}},
            opset_version=OPSET,
            dynamo=False,
        )
        rows, length = 2 * 2, 3
        past = tuple(torch.zeros(rows, heads, length, head_dim) for _ in past_names)
        torch.onnx.export(
            step,
            (torch.zeros(rows, dtype=torch.long), torch.tensor([1]), torch.tensor(4), *past, *cross),
            str(directory / DECODER_FILE),
            input_names=["tokens", "position", "k", *past_names, *cross_names],
            output_names=["scores", "ids", *present_names],
            dynamic_axes={
                "tokens": {0: "rows"},
                "scores": {0: "rows"},
                "ids": {0: "rows"},
                **{name: {0: "images"} for name in cross_names},
                **{name: {0: "rows", 2: "length"} for name in (*past_names, *present_names)},
            },
            opset_version=OPSET,
            custom_opsets={"com.microsoft": 1},
            dynamo=False,
        )


class _DropPreprocessingAdvice(logging.Filter):
    """``quantize_dynamic`` logs advice meant for static quantization on the root logger; it does not apply here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _position_embedding_lookups(path: Path) -> list[str]:
    """Names of the Gather nodes reading the position embeddings: they stay fp32 (1,024 rows), as in torch's int8."""
    import onnx

    graph = onnx.load(str(path)).graph
    tables = {initializer.name for initializer in graph.initializer if initializer.name.endswith("wpe.weight")}
    return [node.name for node in graph.node if node.op_type == "Gather" and node.input[0] in tables]


def quantize_graphs(fp32_dir: Path, out_dir: Path, int8_target: Int8Target) -> None:
    """int8 weights for every MatMul and the token embeddings, then ONNX Runtime's portable graph fusions, saved.

    MatMul weights are int8 per output channel (symmetric), their activations quantized on the fly; the token
    embedding table becomes 8-bit per tensor (ONNX Runtime quantizes lookups that way), a second copy of the tied LM
    head's weights (38.6 MB in vit-gpt2); position embeddings stay fp32. For an ``avx2`` target the weights use 7
    bits (:func:`~imgcaption.backends.cpu_int8.reduce_range`), as torch's int8 mode does on every x86 CPU.
    """
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in (ENCODER_FILE, DECODER_FILE):
        quantized = fp32_dir / f"int8-{name}"
        advice = _DropPreprocessingAdvice()
        logging.getLogger().addFilter(advice)
        try:
            quantize_dynamic(
                fp32_dir / name,
                quantized,
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=reduce_range(int8_target),
                op_types_to_quantize=["MatMul", "Gather"],
                # only GPT-2 has position-embedding lookups: the 400 MB encoder graph need not be read for them
                nodes_to_exclude=_position_embedding_lookups(fp32_dir / name) if name == DECODER_FILE else [],
            )
        finally:
            logging.getLogger().removeFilter(advice)
        options = ort.SessionOptions()
        # "extended" fusions (quantized MatMuls, LayerNorm, GELU) are portable across x86 and arm; "all" would add
        # layout changes tied to this CPU, so those are left to the session at load time.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(out_dir / name)
        ort.InferenceSession(str(quantized), options, providers=["CPUExecutionProvider"])


def save_onnx_artifact(
    source: str | Path, target: str | Path, *, revision: str | None = None, int8_target: Int8Target | None = None
) -> Path:
    """Export the fp32 model at ``source`` (directory or hub id) to an int8 ONNX directory at ``target``.

    ``int8_target`` is the kind of CPU the artifact will run on (:data:`~imgcaption.backends.cpu_int8.Int8Target`);
    None means this machine's.
    """
    from imgcaption.backends.artifact_files import load_fp32_for_export, write_artifact_files

    try:
        import onnx  # noqa: F401  (quantize_dynamic needs it; fail early with the fix)
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            f"the ONNX export needs `{install_hint('export')}` ({exc}); "
            "or build a torch int8 artifact with `imgcaption optimize --backend torch`"
        ) from exc
    loaded = load_fp32_for_export(source, revision, "ONNX Runtime")
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    image_size = int(loaded.model.config.encoder.image_size)
    with tempfile.TemporaryDirectory(prefix="imgcaption-onnx-") as scratch:
        export_graphs(loaded.model, Path(scratch), image_size)
        chosen = int8_target or int8_target_of(cpu_flags())
        quantize_graphs(Path(scratch), out, chosen)
    write_artifact_files(
        loaded,
        source,
        out,
        {
            "format": ONNX_FORMAT,
            "backend": "onnxruntime",
            "quantization": (
                f"ONNX Runtime dynamic: MatMul weights int8 per output channel (symmetric, "
                f"{'7-bit range' if reduce_range(chosen) else 'full 8-bit range'}) with activations quantized "
                "on the fly; token embeddings 8-bit per tensor; position embeddings fp32"
            ),
            "int8_target": chosen,
        },
    )
    return out


def save_torch_artifact(source: str | Path, target: str | Path, *, revision: str | None = None) -> Path:
    """Quantize the fp32 model at ``source`` (a directory or hub id) into a loadable int8 directory at ``target``."""
    import torch
    from safetensors.torch import save_file

    from imgcaption.backends.artifact_files import load_fp32_for_export, write_artifact_files
    from imgcaption.backends.torch_int8 import ARTIFACT_FORMAT, WEIGHTS_FILE, int8_tensors

    loaded = load_fp32_for_export(source, revision, "torch")
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        tensors = int8_tensors(loaded.model)
    save_file(tensors, str(out / WEIGHTS_FILE), metadata={"format": ARTIFACT_FORMAT})
    write_artifact_files(
        loaded,
        source,
        out,
        {
            "format": ARTIFACT_FORMAT,
            "weights": WEIGHTS_FILE,
            "quantization": "int8 weights per output channel (symmetric), dynamic int8 activations",
        },
    )
    return out
