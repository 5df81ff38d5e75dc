"""Greedy and beam search in numpy, for runtimes that have no torch (the ONNX Runtime backend).

A port of :class:`.vitgpt2_exact.FastDecoder`'s searches (themselves transformers' ``_sample`` and
``_beam_search``), with one change that keeps the model's output small: the step returns each row's top ``k``
log-probabilities instead of the whole vocabulary. That loses nothing, because transformers' beam search only ever
looks at the top ``2 × beams`` continuations of an image, and a beam's running score is the same for all its
tokens, so those are always among the top ``2 × beams`` of some row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

_NEG = np.float32(-1.0e9)  # transformers' "impossible" score


class DecoderSteps(Protocol):
    """One generation's decoder: feed a token per row, get its best continuations; it keeps the KV history."""

    def step(self, tokens: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` log-probabilities ``(rows, k)`` (float32, best first) and their token ids ``(rows, k)``."""
        ...

    def reorder(self, rows: np.ndarray) -> None:
        """Row ``i`` continues the history of row ``rows[i]`` (beams that survived, in their new order)."""
        ...


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """The generation config fields a search reads, with transformers' defaults applied."""

    start: int
    pad: int
    eos: tuple[int, ...]
    length_penalty: float = 1.0
    early_stopping: bool | str = False

    @classmethod
    def from_generation_config(cls, generation_config: Any) -> SearchSettings:
        """From a transformers ``GenerationConfig`` (or anything with its attributes)."""
        eos = generation_config.eos_token_id
        eos_ids: tuple[int, ...] = () if eos is None else (eos,) if isinstance(eos, int) else tuple(eos)
        pad = generation_config.pad_token_id
        if not pad:  # generate fills with `pad_token_id or eos_token_id[0]`: a pad id of 0 falls through too
            pad = eos_ids[0] if eos_ids else -1
        # transformers 5 leaves these None in the config and applies its defaults (1.0, False) inside generate
        length_penalty = generation_config.length_penalty
        early_stopping = generation_config.early_stopping
        return cls(
            start=int(generation_config.decoder_start_token_id),
            pad=int(pad),
            eos=eos_ids,
            length_penalty=1.0 if length_penalty is None else float(length_penalty),
            early_stopping=False if early_stopping is None else early_stopping,
        )


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values of each row, largest first.

    Exact ties go to the lower index. ``torch.topk`` leaves their order unspecified (on a CPU it is not by index), so
    on exactly tied scores a beam can differ from transformers'; with real logits exact ties are rare.
    """
    return np.argsort(-values, axis=1, kind="stable")[:, :k]


def greedy(steps: DecoderSteps, images: int, max_length: int, settings: SearchSettings) -> np.ndarray:
    """transformers' greedy search: argmax, pad after EOS, stop when every row has ended."""
    eos = np.asarray(settings.eos, dtype=np.int64)
    sequences = np.full((images, 1), settings.start, dtype=np.int64)
    unfinished = np.ones(images, dtype=np.int64)
    cur_len = 1
    while True:
        _, ids = steps.step(sequences[:, -1], 1)
        next_tokens = ids[:, 0].astype(np.int64)
        if eos.size:
            next_tokens = next_tokens * unfinished + settings.pad * (1 - unfinished)
        sequences = np.concatenate([sequences, next_tokens[:, None]], axis=1)
        cur_len += 1
        done = np.full(images, cur_len >= max_length)
        if eos.size:
            done |= np.isin(next_tokens, eos)
        unfinished &= ~done
        if unfinished.max() == 0:
            return sequences


def beam_search(
    steps: DecoderSteps, images: int, num_beams: int, max_length: int, settings: SearchSettings
) -> np.ndarray:
    """transformers' beam search (length penalty, early stopping and its stopping heuristic included)."""
    rows = images * num_beams
    eos = np.asarray(settings.eos, dtype=np.int64)
    beams_to_keep = max(2, 1 + eos.size) * num_beams
    top_num_beam_mask = np.arange(beams_to_keep) < num_beams
    length_penalty, early_stopping = settings.length_penalty, settings.early_stopping
    prompt_len = cur_len = 1

    fill = settings.pad if eos.size else -1
    running_sequences = np.full((images, num_beams, max_length), fill, dtype=np.int64)
    running_sequences[:, :, 0] = settings.start
    sequences = running_sequences.copy()
    running_beam_scores = np.zeros((images, num_beams), dtype=np.float32)
    running_beam_scores[:, 1:] = _NEG
    beam_scores = np.full((images, num_beams), _NEG, dtype=np.float32)
    is_sent_finished = np.zeros((images, num_beams), dtype=bool)
    heuristic_unsatisfied = np.ones((images, 1), dtype=bool)
    lengths = np.zeros((images, num_beams), dtype=np.int64)  # generated length of each kept sequence
    batch_offset = np.arange(images).reshape(-1, 1) * num_beams

    while True:
        row_scores, row_ids = steps.step(running_sequences[:, :, cur_len - 1].reshape(rows), beams_to_keep)
        # every candidate of an image: (beam, rank) flattened, as transformers flattens (beam, vocab)
        candidates = (row_scores.reshape(images, num_beams, -1) + running_beam_scores[:, :, None]).reshape(images, -1)
        candidate_ids = row_ids.reshape(images, -1).astype(np.int64)
        per_beam = row_scores.shape[1]

        order = top_k(candidates, beams_to_keep)
        topk_log_probs = np.take_along_axis(candidates, order, axis=1)
        topk_beams = order // per_beam
        topk_ids = np.take_along_axis(candidate_ids, order, axis=1)
        topk_sequences = np.take_along_axis(running_sequences, topk_beams[:, :, None], axis=1)
        topk_sequences[:, :, cur_len] = topk_ids
        hits = np.full(topk_ids.shape, cur_len + 1 >= max_length)
        if eos.size:
            hits |= np.isin(topk_ids, eos)

        # the best num_beams unfinished continuations go on
        topk_running_log_probs = topk_log_probs + hits.astype(np.float32) * _NEG
        next_indices = top_k(topk_running_log_probs, num_beams)
        running_sequences = np.take_along_axis(topk_sequences, next_indices[:, :, None], axis=1)
        running_beam_scores = np.take_along_axis(topk_running_log_probs, next_indices, axis=1)
        parents = np.take_along_axis(topk_beams, next_indices, axis=1)

        # finished ones among the top num_beams compete with those finished earlier
        just_finished = hits & top_num_beam_mask[None, :]
        finished_scores = topk_log_probs / np.float32((cur_len + 1 - prompt_len) ** length_penalty)
        all_full = np.all(is_sent_finished, axis=-1, keepdims=True) & (early_stopping is True)
        finished_scores = finished_scores + all_full.astype(np.float32) * _NEG
        finished_scores = finished_scores + (~heuristic_unsatisfied).astype(np.float32) * _NEG
        finished_scores = finished_scores + (~just_finished).astype(np.float32) * _NEG
        merged_scores = np.concatenate((beam_scores, finished_scores), axis=1)
        keep = top_k(merged_scores, num_beams)
        sequences = np.take_along_axis(np.concatenate((sequences, topk_sequences), axis=1), keep[:, :, None], axis=1)
        beam_scores = np.take_along_axis(merged_scores, keep, axis=1)
        new_lengths = np.full_like(topk_ids, cur_len + 1 - prompt_len)
        lengths = np.take_along_axis(np.concatenate((lengths, new_lengths), axis=1), keep, axis=1)
        is_sent_finished = np.take_along_axis(np.concatenate((is_sent_finished, just_finished), axis=1), keep, axis=1)

        steps.reorder((parents + batch_offset).reshape(rows))

        cur_len += 1
        if early_stopping == "never" and length_penalty > 0.0:
            best_length = max_length - prompt_len
        else:
            best_length = cur_len - prompt_len
        best_running = running_beam_scores[:, :1] / np.float32(best_length**length_penalty)
        worst_finished = np.where(is_sent_finished, np.min(beam_scores, axis=1, keepdims=True), _NEG)
        heuristic_unsatisfied &= np.any(best_running > worst_finished, axis=-1, keepdims=True)
        improvement_possible = bool(np.any(heuristic_unsatisfied))
        open_beam = not (bool(np.all(is_sent_finished)) and early_stopping is True)
        valid_continuations = not bool(np.all(hits))
        if not (improvement_possible and open_beam and valid_continuations):
            break

    best = sequences[:, 0, :]
    output_length = prompt_len + int(lengths[:, 0].max())
    return best[:, :output_length]
