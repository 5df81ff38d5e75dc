"""A lean decoder for vit-gpt2: the same tokens as ``model.generate``, without its per-step overhead.

Why it is faster than ``generate(num_beams=4)`` at batch 1 on a CPU (measured in ``BENCHMARKS.md``):

* the encoder and the cross-attention keys/values run once per *image*, not once per beam — ``generate`` copies
  the encoder output for every beam and then reorders the cross-attention cache (12 layers × 2 tensors of
  beams × 197 × 768 floats) on every step, although the beams of one image share it; here the beams read one
  copy through a stride-0 view;
* the self-attention cache is preallocated and reordered in place, instead of being concatenated each step;
* the per-step work is a straight run of module calls, with none of ``generate``'s mask building, cache objects
  and output bookkeeping.

The search itself is a port of transformers' vectorised beam search (``GenerationMixin._beam_search``, transformers
5) and greedy search, expression by expression, so scores and ties resolve exactly as there. Every step calls the
model's own modules (``c_attn``, ``ln_1``, ``lm_head``…), so an int8-quantized model decodes through the same code.
:func:`fast_path_unsupported` says when a model or generation config needs something this port does not do (logits
processors, sampling, several returned sequences, a decoder other than GPT-2); the caller then uses ``generate``.
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING, Any

from imgcaption.backends.numpy_search import SearchSettings
from imgcaption.generation import GenerationOptions

if TYPE_CHECKING:
    import torch

# Generation-config fields that would add a logits processor or change the search; the fast path only runs when
# each still has transformers' default value (a fresh ``GenerationConfig()``).
_MUST_BE_DEFAULT = (
    "do_sample",
    "num_return_sequences",
    "num_beam_groups",
    "diversity_penalty",
    "repetition_penalty",
    "encoder_repetition_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "force_words_ids",
    "constraints",
    "min_length",
    "min_new_tokens",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "suppress_tokens",
    "begin_suppress_tokens",
    "sequence_bias",
    "exponential_decay_length_penalty",
    "renormalize_logits",
    "remove_invalid_values",
    "guidance_scale",
    "watermarking_config",
    "max_time",
    "stop_strings",
    "low_memory",
)

logger = logging.getLogger(__name__)

_NEG = -1.0e9  # transformers' "impossible" score, kept identical so sums round the same way


_decoders: weakref.WeakKeyDictionary[Any, FastDecoder] = weakref.WeakKeyDictionary()


def decode(
    model: Any, pixel_values: torch.Tensor, options: GenerationOptions, *, has_generate: bool = True
) -> torch.Tensor:
    """Token ids for a batch: :class:`FastDecoder` where it reproduces ``generate``, else ``generate`` itself.

    ``has_generate=False`` is for a model with no ``generate`` to fall back on (the torch int8 runtime).
    """
    import torch

    decoder = _decoders.get(model)
    if decoder is None:
        decoder = _decoders[model] = FastDecoder(model)
    if not has_generate:
        return decoder.generate(pixel_values, options)
    reason = fast_path_unsupported(model, options)
    if reason is None:
        return decoder.generate(pixel_values, options)
    logger.debug("using transformers generate: %s", reason)
    with torch.inference_mode():
        output: torch.Tensor = model.generate(pixel_values, **options.generate_kwargs())
    return output


def fast_path_unsupported(model: Any, options: GenerationOptions) -> str | None:
    """Why :class:`FastDecoder` cannot reproduce ``model.generate`` for this model and options, or ``None``."""
    from transformers import GenerationConfig

    decoder = getattr(model, "decoder", None)
    if decoder is None or type(decoder).__name__ != "GPT2LMHeadModel":
        return f"decoder is {type(decoder).__name__}, not GPT2LMHeadModel"
    config = decoder.config
    if not getattr(config, "add_cross_attention", False) or config.scale_attn_by_inverse_layer_idx:
        return "GPT-2 variant without plain cross-attention"
    if config._attn_implementation != "sdpa":
        # The fast path computes attention with SDPA; eager softmax differs in the last bits, enough to flip a beam.
        return f"decoder attention is {config._attn_implementation!r}, not 'sdpa'"
    if getattr(model, "enc_to_dec_proj", None) is not None:
        return "encoder and decoder widths differ"
    defaults = GenerationConfig()  # type: ignore[no-untyped-call]
    generation_config = model.generation_config
    for field in _MUST_BE_DEFAULT:
        if getattr(generation_config, field, None) != getattr(defaults, field, None):
            return f"generation_config.{field} is set"
    if options.total_length > config.n_positions:
        return f"max length {options.total_length} exceeds the decoder's {config.n_positions} positions"
    if generation_config.decoder_start_token_id is None:
        return "no decoder_start_token_id"
    return None


class FastDecoder:
    """Encode once per image, then greedy or beam search over a hand-rolled GPT-2 step with a static KV cache."""

    def __init__(self, model: Any) -> None:
        self._model = model
        decoder = model.decoder
        self._transformer = decoder.transformer
        config = decoder.config
        self._heads: int = config.n_head
        self._head_dim: int = config.n_embd // config.n_head
        self._width: int = config.n_embd
        self._tokens = SearchSettings.from_generation_config(model.generation_config)
        self._length_penalty = self._tokens.length_penalty
        self._early_stopping = self._tokens.early_stopping

    def generate(self, pixel_values: torch.Tensor, options: GenerationOptions) -> torch.Tensor:
        """Token ids (start token first), identical to ``model.generate(pixel_values, **options.generate_kwargs())``."""
        import torch

        with torch.inference_mode():
            encoded = self._model.encoder(pixel_values=pixel_values).last_hidden_state
            if options.num_beams == 1:
                return self._greedy(encoded, options.total_length)
            return self._beam_search(encoded, options.num_beams, options.total_length)

    # ---------------------------------------------------------------- the GPT-2 step

    def _cross_kv(self, encoded: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Cross-attention keys and values per layer, (images, heads, patches, head_dim): computed once."""
        kv = []
        for block in self._transformer.h:
            key, value = block.crossattention.c_attn(encoded).split(self._width, dim=2)
            kv.append((self._split_heads(key), self._split_heads(value)))
        return kv

    def _split_heads(self, states: torch.Tensor) -> torch.Tensor:
        return states.view(*states.shape[:-1], self._heads, self._head_dim).transpose(1, 2)

    def _step(
        self,
        tokens: torch.Tensor,
        position: int,
        cache: list[tuple[torch.Tensor, torch.Tensor]],
        cross: list[tuple[torch.Tensor, torch.Tensor]],
        beams: int,
    ) -> torch.Tensor:
        """Logits (rows, vocab) for one new token per row; rows are images × beams, beams of an image adjacent."""
        import torch
        from torch.nn.functional import scaled_dot_product_attention as sdpa

        transformer = self._transformer
        rows = tokens.shape[0]
        images = rows // beams
        heads, head_dim, width = self._heads, self._head_dim, self._width
        positions = torch.full((1, 1), position, dtype=torch.long)
        hidden = transformer.wte(tokens.view(rows, 1)) + transformer.wpe(positions)
        for block, (key_cache, value_cache), (cross_key, cross_value) in zip(transformer.h, cache, cross, strict=True):
            attn = block.attn
            query, key, value = attn.c_attn(block.ln_1(hidden)).split(width, dim=2)
            key_cache[:, :, position] = key.view(rows, heads, head_dim)
            value_cache[:, :, position] = value.view(rows, heads, head_dim)
            attended = sdpa(
                self._split_heads(query),
                key_cache[:, :, : position + 1],
                value_cache[:, :, : position + 1],
                scale=attn.scaling,
            )
            hidden = attn.c_proj(attended.transpose(1, 2).reshape(rows, 1, width)) + hidden
            # Cross-attention: the beams of one image read that image's keys/values through a stride-0 view.
            # (Folding beams into the query length would be cheaper still, but rounds differently from generate.)
            crossattention = block.crossattention
            query = self._split_heads(crossattention.q_attn(block.ln_cross_attn(hidden)))
            parts = [
                sdpa(
                    query[image * beams : (image + 1) * beams],
                    cross_key[image : image + 1].expand(beams, -1, -1, -1),
                    cross_value[image : image + 1].expand(beams, -1, -1, -1),
                    scale=crossattention.scaling,
                )
                for image in range(images)
            ]
            attended = parts[0] if images == 1 else torch.cat(parts)
            hidden = hidden + crossattention.c_proj(attended.transpose(1, 2).reshape(rows, 1, width))
            mlp = block.mlp
            hidden = hidden + mlp.c_proj(mlp.act(mlp.c_fc(block.ln_2(hidden))))
        logits: torch.Tensor = self._model.decoder.lm_head(transformer.ln_f(hidden))
        return logits[:, -1, :].float()

    def _new_cache(self, rows: int, max_length: int, like: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        import torch

        shape = (rows, self._heads, max_length, self._head_dim)
        return [
            (torch.empty(shape, dtype=like.dtype), torch.empty(shape, dtype=like.dtype))
            for _ in range(len(self._transformer.h))
        ]

    # ---------------------------------------------------------------- searches

    def _greedy(self, encoded: torch.Tensor, max_length: int) -> torch.Tensor:
        """transformers' greedy ``_sample``: argmax, pad after EOS, stop when every row has ended."""
        import torch

        images = encoded.shape[0]
        cross = self._cross_kv(encoded)
        cache = self._new_cache(images, max_length, encoded)
        sequences = torch.full((images, 1), self._tokens.start, dtype=torch.long)
        unfinished = torch.ones(images, dtype=torch.long)
        eos = torch.tensor(self._tokens.eos, dtype=torch.long)
        cur_len = 1
        while True:
            logits = self._step(sequences[:, -1], cur_len - 1, cache, cross, 1)
            next_tokens = torch.argmax(logits, dim=-1)
            if eos.numel():
                next_tokens = next_tokens * unfinished + self._tokens.pad * (1 - unfinished)
            sequences = torch.cat([sequences, next_tokens[:, None]], dim=-1)
            cur_len += 1
            done = torch.full((images,), cur_len >= max_length, dtype=torch.bool)
            if eos.numel():
                done = done | torch.isin(next_tokens, eos)
            unfinished = unfinished & ~done
            if unfinished.max() == 0:
                return sequences

    def _beam_search(self, encoded: torch.Tensor, num_beams: int, max_length: int) -> torch.Tensor:
        """transformers' ``_beam_search`` (length penalty, early stopping and its heuristic included)."""
        import torch

        images = encoded.shape[0]
        rows = images * num_beams
        eos = torch.tensor(self._tokens.eos, dtype=torch.long)
        beams_to_keep = max(2, 1 + len(self._tokens.eos)) * num_beams
        top_num_beam_mask = torch.cat(
            (torch.ones(num_beams, dtype=torch.bool), torch.zeros(beams_to_keep - num_beams, dtype=torch.bool))
        )
        length_penalty, early_stopping = self._length_penalty, self._early_stopping
        prompt_len = cur_len = 1

        fill = self._tokens.pad if eos.numel() else -1
        running_sequences = torch.full((images, num_beams, max_length), fill, dtype=torch.long)
        running_sequences[:, :, 0] = self._tokens.start
        sequences = running_sequences.clone()
        running_beam_scores = torch.zeros((images, num_beams), dtype=torch.float)
        running_beam_scores[:, 1:] = _NEG
        beam_scores = torch.full((images, num_beams), _NEG, dtype=torch.float)
        is_sent_finished = torch.zeros((images, num_beams), dtype=torch.bool)
        heuristic_unsatisfied = torch.ones((images, 1), dtype=torch.bool)
        # Generated length of each kept sequence (transformers derives it from its beam_indices at the end).
        lengths = torch.zeros((images, num_beams), dtype=torch.long)
        batch_offset = torch.arange(images).view(-1, 1) * num_beams

        cross = self._cross_kv(encoded)
        cache = self._new_cache(rows, max_length, encoded)
        while True:
            logits = self._step(
                running_sequences[:, :, cur_len - 1].reshape(rows), cur_len - 1, cache, cross, num_beams
            )
            vocab_size = logits.shape[-1]
            log_probs = torch.nn.functional.log_softmax(logits, dim=-1)
            log_probs = log_probs.view(images, num_beams, -1) + running_beam_scores[:, :, None]
            log_probs = log_probs.reshape(images, -1)

            # top-K continuations over all beams of an image
            topk_log_probs, topk_indices = torch.topk(log_probs, k=beams_to_keep)
            topk_beams = topk_indices // vocab_size
            topk_ids = topk_indices % vocab_size
            topk_sequences = torch.take_along_dim(running_sequences, topk_beams[:, :, None], dim=1)
            topk_sequences[:, :, cur_len] = topk_ids
            hits = torch.full_like(topk_ids, cur_len + 1 >= max_length, dtype=torch.bool)
            if eos.numel():
                hits = hits | torch.isin(topk_ids, eos)

            # the best num_beams unfinished continuations go on
            topk_running_log_probs = topk_log_probs + hits.to(torch.float32) * _NEG
            next_indices = torch.topk(topk_running_log_probs, k=num_beams)[1]
            running_sequences = torch.take_along_dim(topk_sequences, next_indices[:, :, None], dim=1)
            running_beam_scores = torch.take_along_dim(topk_running_log_probs, next_indices, dim=1)
            parents = torch.take_along_dim(topk_beams, next_indices, dim=1)

            # finished ones among the top num_beams compete with those finished earlier
            just_finished = hits & top_num_beam_mask[None, :]
            finished_scores = topk_log_probs / ((cur_len + 1 - prompt_len) ** length_penalty)
            all_full = torch.all(is_sent_finished, dim=-1, keepdim=True) & (early_stopping is True)
            finished_scores += all_full.to(torch.float32) * _NEG
            finished_scores += (~heuristic_unsatisfied).to(torch.float32) * _NEG
            finished_scores += (~just_finished) * _NEG
            merged_scores = torch.cat((beam_scores, finished_scores), dim=1)
            keep = torch.topk(merged_scores, k=num_beams)[1]
            sequences = torch.take_along_dim(torch.cat((sequences, topk_sequences), dim=1), keep[:, :, None], dim=1)
            beam_scores = torch.take_along_dim(merged_scores, keep, dim=1)
            new_lengths = torch.full_like(topk_ids, cur_len + 1 - prompt_len)
            lengths = torch.take_along_dim(torch.cat((lengths, new_lengths), dim=1), keep, dim=1)
            is_sent_finished = torch.take_along_dim(torch.cat((is_sent_finished, just_finished), dim=1), keep, dim=1)

            # the surviving beams' self-attention history, in their new order
            order = (parents + batch_offset).view(rows)
            for key_cache, value_cache in cache:
                key_cache[:, :, :cur_len] = key_cache[:, :, :cur_len].index_select(0, order)
                value_cache[:, :, :cur_len] = value_cache[:, :, :cur_len].index_select(0, order)

            cur_len += 1
            if early_stopping == "never" and length_penalty > 0.0:
                best_length = max_length - prompt_len
            else:
                best_length = cur_len - prompt_len
            best_running = running_beam_scores[:, :1] / (best_length**length_penalty)
            worst_finished = torch.where(is_sent_finished, torch.min(beam_scores, dim=1, keepdim=True)[0], _NEG)
            heuristic_unsatisfied = heuristic_unsatisfied & torch.any(
                best_running > worst_finished, dim=-1, keepdim=True
            )
            improvement_possible = bool(torch.any(heuristic_unsatisfied))
            open_beam = not (bool(torch.all(is_sent_finished)) and early_stopping is True)
            valid_continuations = not bool(torch.all(hits))
            if not (improvement_possible and open_beam and valid_continuations):
                break

        best = sequences[:, 0, :]
        output_length = prompt_len + int(lengths[:, 0].max())
        return best[:, :output_length]
