"""Train the tiny scene captioner committed at ``src/imgcaption/testing/scene_captioner/`` (CPU, fixed seed).

The model is a real ``VisionEncoderDecoderModel`` (ViT encoder + GPT-2 decoder with cross-attention) with the real
GPT-2 tokenizer and preprocessor config of nlpconnect/vit-gpt2-image-captioning, shrunk so it trains on two CPU cores.
What makes that feasible:

1. Reduced-vocabulary training. Captions use ~15 GPT-2 tokens. Training runs a copy of the model whose decoder has
   one embedding row per used token plus one row standing for all ``V - K`` other tokens, with ``log(V - K)`` added
   to that row's logit. Since the exported model gives every unused token that same row (tied embeddings), its
   full-vocabulary softmax, and so its loss, equals the training loss exactly, at a fraction of the cost per step.
2. Auxiliary heads on the encoder output (per patch: colour, shape, which object; on the CLS token: the relation and
   both objects' colour and shape). They give the encoder dense supervision and are discarded after training.
3. Objects sit in near-fixed slots (see ``imgcaption.testing.scenes``); every batch is fresh (seeds never repeat).
4. Linear warmup then cosine decay of the learning rate.

Usage (the committed model)::

    python scripts/train_scene_captioner.py --output src/imgcaption/testing/scene_captioner

The script ends by loading the saved directory back (fp16 weights, fp32 compute) and reporting exact-caption
accuracy on ``held_out_scenes(200)`` with beams 4, max_length 16.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Other jobs share these cores: spinning OpenMP workers then slow training down many times over.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from imgcaption.testing.random_model import VENDORED_MODEL_FILES, vendored_config  # noqa: E402
from imgcaption.testing.scenes import (  # noqa: E402
    COLORS,
    HELD_OUT_SEED_OFFSET,
    RELATION_PHRASES,
    RELATIONS,
    SHAPES,
    Scene,
    generate_scene,
    held_out_scenes,
    object_masks,
)

VOCAB_SIZE = 50257
EOS = 50256
COLOR_NAMES = sorted(COLORS)
VALIDATION_SEED_OFFSET = 900_000_000  # monitoring during training; neither training nor held-out seeds
COPIED_FILES = ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "generation_config.json")


@dataclass(frozen=True)
class Architecture:
    """The shrunk sizes; everything else comes from the real model's config.json."""

    enc_hidden: int = 64
    enc_layers: int = 3
    enc_heads: int = 4
    enc_mlp: int = 256
    patch: int = 32
    dec_hidden: int = 64
    dec_layers: int = 2
    dec_heads: int = 2

    def config(self, vocab_size: int) -> dict[str, Any]:
        config = vendored_config("full")
        config["encoder"].update(hidden_size=self.enc_hidden, num_hidden_layers=self.enc_layers,
                                 num_attention_heads=self.enc_heads, intermediate_size=self.enc_mlp,
                                 patch_size=self.patch)
        # No dropout: every batch is new data, so there is nothing to overfit; eval ignores dropout anyway.
        config["decoder"].update(n_embd=self.dec_hidden, n_layer=self.dec_layers, n_head=self.dec_heads,
                                 n_positions=64, n_ctx=64, vocab_size=vocab_size,
                                 attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0)
        return config


def caption_token_ids(tokenizer: Any) -> list[int]:
    """Every GPT-2 token any caption can use, plus EOS (also the decoder start token), sorted."""
    used = {EOS}
    for relation in RELATIONS:
        for first in COLOR_NAMES:
            for second in COLOR_NAMES:
                for shape_a in SHAPES:
                    for shape_b in SHAPES:
                        text = f"a {first} {shape_a} {RELATION_PHRASES[relation]} a {second} {shape_b}"
                        used.update(tokenizer(text)["input_ids"])
    return sorted(used)


class AuxHeads(nn.Module):
    """Encoder-side classifiers used only in training: they make each patch (and CLS) know what it shows."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        n_colors, n_shapes = len(COLOR_NAMES), len(SHAPES)
        self.patch_color = nn.Linear(hidden, n_colors + 1)
        self.patch_shape = nn.Linear(hidden, n_shapes + 1)
        self.patch_role = nn.Linear(hidden, 3)
        self.cls = nn.ModuleList([nn.Linear(hidden, n) for n in (len(RELATIONS), n_colors, n_shapes,
                                                                  n_colors, n_shapes)])

    def loss(self, encoded: torch.Tensor, patch_labels: torch.Tensor, cls_labels: torch.Tensor) -> torch.Tensor:
        patches, cls = encoded[:, 1:], encoded[:, 0]
        total = (F.cross_entropy(self.patch_color(patches).flatten(0, 1), patch_labels[..., 0].flatten())
                 + F.cross_entropy(self.patch_shape(patches).flatten(0, 1), patch_labels[..., 1].flatten())
                 + F.cross_entropy(self.patch_role(patches).flatten(0, 1), patch_labels[..., 2].flatten()))
        for index, head in enumerate(self.cls):
            total = total + F.cross_entropy(head(cls), cls_labels[:, index])
        return total / 8


class Batches:
    """Fresh scenes as tensors: pixels (exactly what ViTImageProcessor gives), caption tokens, aux labels."""

    def __init__(self, tokenizer: Any, used: list[int], patch: int, jpeg_fraction: float) -> None:
        self.tokenizer = tokenizer
        self.small_id = {token: index for index, token in enumerate(used)}
        self.patch = patch
        self.jpeg_fraction = jpeg_fraction

    def __call__(self, seeds: list[int], augment: bool = True) -> dict[str, torch.Tensor]:
        scenes = [generate_scene(seed) for seed in seeds]
        pixels = np.stack([self._pixels(scene, seed, augment) for scene, seed in zip(scenes, seeds, strict=True)])
        tokens = [[self.small_id[t] for t in self.tokenizer(s.caption)["input_ids"]] for s in scenes]
        length = max(len(t) for t in tokens) + 1
        eos = self.small_id[EOS]
        decoder_input = torch.full((len(seeds), length), eos, dtype=torch.long)
        labels = torch.full((len(seeds), length), -100, dtype=torch.long)
        for row, caption in enumerate(tokens):
            decoder_input[row, 1 : len(caption) + 1] = torch.tensor(caption)
            labels[row, : len(caption) + 1] = torch.tensor([*caption, eos])
        return {
            "pixel_values": torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))).float()
            .mul_(1 / 127.5).sub_(1.0),
            "decoder_input_ids": decoder_input,
            "labels": labels,
            "patch_labels": torch.from_numpy(np.stack([self._patch_labels(s) for s in scenes])),
            "cls_labels": torch.tensor([self._cls_labels(s) for s in scenes]),
        }

    def _pixels(self, scene: Scene, seed: int, augment: bool) -> np.ndarray:
        """Some training images go through JPEG, as files in end-to-end tests may (the scene itself is lossless)."""
        rng = random.Random(seed * 7 + 3)
        if augment and rng.random() < self.jpeg_fraction:
            buffer = io.BytesIO()
            scene.image.save(buffer, format="JPEG", quality=rng.randint(60, 95))
            buffer.seek(0)
            from PIL import Image

            return np.asarray(Image.open(buffer).convert("RGB"))
        return np.asarray(scene.image)

    def _patch_labels(self, scene: Scene) -> np.ndarray:
        """Per patch: (colour, shape, role) of the object covering most of it (>=20%), 0 where none does."""
        masks = object_masks(scene.objects)
        n, size, _ = masks.shape
        grid = size // self.patch
        columns = masks.reshape(n, size, grid, self.patch).sum(axis=3, dtype=np.int32)
        coverage = columns.reshape(n, grid, self.patch, grid).sum(axis=2).reshape(n, -1) / self.patch**2
        best = coverage.argmax(axis=0)
        covered = coverage.max(axis=0) >= 0.2
        labels = np.zeros((grid * grid, 3), dtype=np.int64)
        for role, obj in enumerate(scene.objects):
            where = covered & (best == role)
            labels[where] = (COLOR_NAMES.index(obj.color) + 1, SHAPES.index(obj.shape) + 1, role + 1)
        return labels

    @staticmethod
    def _cls_labels(scene: Scene) -> list[int]:
        first, second = scene.objects
        return [RELATIONS.index(scene.relation), COLOR_NAMES.index(first.color), SHAPES.index(first.shape),
                COLOR_NAMES.index(second.color), SHAPES.index(second.shape)]


def decoder_loss(logits: torch.Tensor, labels: torch.Tensor, other_bias: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy equal to the full-vocabulary loss: the last row stands for ``V - K`` identical rows."""
    logits = torch.cat([logits[..., :-1], logits[..., -1:] + other_bias], dim=-1)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten()), logits


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def export(small: Any, arch: Architecture, used: list[int], output: Path) -> None:
    """Full-vocabulary model with the trained weights, fp16 on disk, fp32 when loaded."""
    from transformers import VisionEncoderDecoderConfig, VisionEncoderDecoderModel

    config = arch.config(VOCAB_SIZE)
    full = VisionEncoderDecoderModel(VisionEncoderDecoderConfig.from_dict(config))
    state = {k: v for k, v in small.state_dict().items() if "wte" not in k and "lm_head" not in k}
    missing, unexpected = full.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert all("wte" in k or "lm_head" in k for k in missing), missing
    small_wte = small.decoder.transformer.wte.weight.detach()
    with torch.no_grad():
        wte = full.decoder.transformer.wte.weight
        wte.copy_(small_wte[-1].expand_as(wte))  # every unused token shares the "other" row
        wte[torch.tensor(used)] = small_wte[:-1]
    assert full.decoder.lm_head.weight.data_ptr() == wte.data_ptr(), "decoder embeddings must stay tied"
    output.mkdir(parents=True, exist_ok=True)
    full.half().save_pretrained(output)
    config_file = output / "config.json"
    saved = json.loads(config_file.read_text())
    saved["dtype"] = "float32"  # transformers 5 would otherwise load the fp16 weights as fp16
    config_file.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    for name in COPIED_FILES:
        shutil.copyfile(VENDORED_MODEL_FILES / name, output / name)


def check_export(
    small: Any, directory: Path, used: list[int], batch: dict[str, torch.Tensor], other_bias: float
) -> None:
    """The saved full-vocabulary model must reproduce the training loss (up to fp16 rounding of the weights)."""
    from transformers import VisionEncoderDecoderModel

    full = VisionEncoderDecoderModel.from_pretrained(directory).eval()
    to_full = torch.tensor([*used, -100])
    labels = batch["labels"]
    full_labels = torch.where(labels == -100, -100, to_full[labels.clamp(min=0)])
    with torch.no_grad():
        reduced, _ = decoder_loss(small(pixel_values=batch["pixel_values"],
                                        decoder_input_ids=batch["decoder_input_ids"]).logits, labels, other_bias)
        logits = full(pixel_values=batch["pixel_values"], decoder_input_ids=to_full[batch["decoder_input_ids"]]).logits
        exact = F.cross_entropy(logits.flatten(0, 1), full_labels.flatten())
    print(f"export check: reduced-vocab loss {reduced.item():.5f}, saved full-vocab model {exact.item():.5f}",
          flush=True)
    assert abs(reduced.item() - exact.item()) < 0.01 + 0.05 * reduced.item(), "export does not match training"


def evaluate_directory(directory: Path, scenes: list[Scene], batch_size: int = 25) -> tuple[float, list[str]]:
    """Exact-caption accuracy of a saved model with the default generation settings (beams 4, max_length 16)."""
    from transformers import AutoTokenizer, VisionEncoderDecoderModel, ViTImageProcessor

    model = VisionEncoderDecoderModel.from_pretrained(directory).eval()
    assert model.dtype == torch.float32, model.dtype
    processor = ViTImageProcessor.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    texts: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(scenes), batch_size):
            chunk = scenes[start : start + batch_size]
            pixels = processor(images=[s.image for s in chunk], return_tensors="pt").pixel_values
            ids = model.generate(pixels, num_beams=4, max_length=16, do_sample=False)
            texts += [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    misses = [f"{s.seed}: want {s.caption!r} got {t!r}" for s, t in zip(scenes, texts, strict=True) if t != s.caption]
    return 1 - len(misses) / len(scenes), misses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=ROOT / "src/imgcaption/testing/scene_captioner")
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--aux-weight", type=float, default=0.5)
    parser.add_argument("--jpeg-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=400)
    parser.add_argument("--enc-hidden", type=int, default=Architecture.enc_hidden)
    parser.add_argument("--enc-layers", type=int, default=Architecture.enc_layers)
    parser.add_argument("--enc-mlp", type=int, default=Architecture.enc_mlp)
    parser.add_argument("--patch", type=int, default=Architecture.patch)
    parser.add_argument("--dec-hidden", type=int, default=Architecture.dec_hidden)
    parser.add_argument("--dec-layers", type=int, default=Architecture.dec_layers)
    parser.add_argument("--held-out", type=int, default=200)
    args = parser.parse_args()

    from transformers import AutoTokenizer, VisionEncoderDecoderConfig, VisionEncoderDecoderModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    arch = Architecture(enc_hidden=args.enc_hidden, enc_layers=args.enc_layers, enc_mlp=args.enc_mlp,
                        patch=args.patch, dec_hidden=args.dec_hidden, dec_layers=args.dec_layers)
    tokenizer = AutoTokenizer.from_pretrained(VENDORED_MODEL_FILES)
    used = caption_token_ids(tokenizer)
    other_bias = math.log(VOCAB_SIZE - len(used))
    model = VisionEncoderDecoderModel(VisionEncoderDecoderConfig.from_dict(arch.config(len(used) + 1)))
    aux = AuxHeads(arch.enc_hidden)
    n_params = sum(p.numel() for p in model.parameters())
    full_params = n_params + (VOCAB_SIZE - len(used) - 1) * arch.dec_hidden
    print(f"{arch}\ntraining vocab {len(used)}+1, {n_params:,} params in training, {full_params:,} exported "
          f"(~{full_params * 2 / 1e6:.1f} MB fp16)", flush=True)

    params = list(model.parameters()) + list(aux.parameters())
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay,
                                   "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))
    batches = Batches(tokenizer, used, arch.patch, args.jpeg_fraction)
    validation = batches([VALIDATION_SEED_OFFSET + i for i in range(256)], augment=False)
    assert args.steps * args.batch_size + args.seed * 10_000_000 < VALIDATION_SEED_OFFSET < HELD_OUT_SEED_OFFSET

    started = time.perf_counter()
    window: list[float] = []
    model.train()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr, args.warmup)
        first = args.seed * 10_000_000 + step * args.batch_size
        batch = batches(list(range(first, first + args.batch_size)))
        out = model(pixel_values=batch["pixel_values"], decoder_input_ids=batch["decoder_input_ids"])
        caption_loss, _ = decoder_loss(out.logits, batch["labels"], other_bias)
        aux_loss = aux.loss(out.encoder_last_hidden_state, batch["patch_labels"], batch["cls_labels"])
        loss = caption_loss + args.aux_weight * aux_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        window.append(caption_loss.item())
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            elapsed = time.perf_counter() - started
            print(f"step {step + 1:6d}  caption loss {sum(window) / len(window):.4f}  aux {aux_loss.item():.4f}  "
                  f"lr {optimizer.param_groups[0]['lr']:.2e}  {elapsed / 60:.1f} min "
                  f"({(step + 1) / elapsed:.2f} steps/s)", flush=True)
            window = []
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            model.eval()
            with torch.no_grad():
                out = model(pixel_values=validation["pixel_values"],
                            decoder_input_ids=validation["decoder_input_ids"])
                val_loss, logits = decoder_loss(out.logits, validation["labels"], other_bias)
            mask = validation["labels"] != -100
            right = (logits.argmax(-1) == validation["labels"]) | ~mask
            print(f"  validation: caption loss {val_loss.item():.4f}, greedy-exact "
                  f"{right.all(dim=1).float().mean().item():.3f} on 256 scenes", flush=True)
            model.train()

    minutes = (time.perf_counter() - started) / 60
    model.eval()
    export(model, arch, used, args.output)
    check_export(model, args.output, used, validation, other_bias)
    size = sum(f.stat().st_size for f in args.output.iterdir())
    print(f"trained {args.steps} steps in {minutes:.1f} min; saved {args.output} ({size / 1e6:.2f} MB)", flush=True)
    if args.held_out:
        accuracy, misses = evaluate_directory(args.output, held_out_scenes(args.held_out))
        print(f"held-out exact captions (beams 4, max_length 16, seeds {HELD_OUT_SEED_OFFSET}+): "
              f"{accuracy:.3f} of {args.held_out}", flush=True)
        for miss in misses:
            print("  miss", miss)


if __name__ == "__main__":
    main()
