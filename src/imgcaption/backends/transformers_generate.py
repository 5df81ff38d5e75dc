"""Families other than vit-gpt2 (BLIP, GIT, Florence-2, chat models): their own processor and ``model.generate``.

Captions are the model's own: inputs are what the family's processor makes for the image and the prompt, tokens are
``model.generate`` with the caption's options, and text is what the processor decodes, exactly as the family's model
card calls them. The processor runs in the generator, not the preprocessing stage, because it lays the prompt's
tokens around the image's (Florence-2's task prompt, a chat template), so it needs both at once.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from imgcaption.backends.base import LoadedModel
from imgcaption.backends.families import FLORENCE2_TASKS, Family
from imgcaption.errors import ConfigurationError
from imgcaption.generation import GenerationOptions

if TYPE_CHECKING:
    import torch
    from PIL import Image


@dataclasses.dataclass(frozen=True, slots=True)
class ImageBatch:
    """The preprocessing stage's output: RGB images, for the processor to lay out with the prompt."""

    images: list[Image.Image]

    def __len__(self) -> int:
        """The batch's image count, as ``len(pixel_values)`` is for vit-gpt2 (code that counts a batch uses it)."""
        return len(self.images)


class FamilyRuntime:
    """The four stages of one family over one model and processor (``LoadedModel`` holds its bound methods)."""

    def __init__(self, family: Family, model: Any, processor: Any) -> None:
        self.family = family
        self.model = model
        self.processor = processor

    # ------------------------------------------------------------------ options

    def check_options(self, options: GenerationOptions) -> GenerationOptions:
        """The family's own check (:meth:`Family.check_options`): its default prompt filled in, or a refusal."""
        return self.family.check_options(options)

    # ------------------------------------------------------------------ stages

    def prepare(self, images: Sequence[Image.Image]) -> ImageBatch:
        return ImageBatch([image if image.mode == "RGB" else image.convert("RGB") for image in images])

    def model_inputs(self, batch: ImageBatch, options: GenerationOptions) -> Any:
        """What the family's processor makes of the images and the prompt (the family's reference call)."""
        images, prompt, kind = batch.images, options.prompt, self.family.prompt
        if kind == "instruction":
            conversations = [
                [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]}]
                for image in images
            ]
            return self.processor.apply_chat_template(
                conversations,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
                # decoder-only: left padding makes every prompt end where its generation starts
                processor_kwargs={"padding": True, "padding_side": "left"},
            )
        if prompt is None:
            return self.processor(images=images, return_tensors="pt")
        return self.processor(images=images, text=[prompt] * len(images), return_tensors="pt")

    def generate(self, batch: ImageBatch, options: GenerationOptions) -> torch.Tensor:
        """Token ids, one row per image; a chat model's rows hold only the answer, not the prompt it was given."""
        import torch

        inputs = self.model_inputs(batch, options).to(self.model.device)
        if self.model.dtype != torch.float32:
            inputs = inputs.to(self.model.dtype)  # floating-point tensors only (pixels), never token ids
        with torch.inference_mode():
            output: torch.Tensor = self.model.generate(**inputs, **options.generate_kwargs())
        if self.family.prompt == "instruction":
            output = output[:, inputs["input_ids"].shape[1] :]
        return output.cpu()

    def decode(self, token_ids: Any) -> list[str]:
        if self.family.prompt == "task":
            return [self._florence_text(row) for row in token_ids]
        texts = self.processor.batch_decode(token_ids, skip_special_tokens=True)
        return [str(text).strip() for text in texts]

    def _florence_text(self, row: Any) -> str:
        """Florence-2's own post-processing; every captioning task is its ``pure_text`` kind, so one task serves."""
        pad = self.processor.tokenizer.pad_token_id
        ids = [int(token) for token in row if int(token) != pad]  # a batch pads finished rows; one image has none
        text = self.processor.batch_decode([ids], skip_special_tokens=False)[0]
        answer = self.processor.post_process_generation(text, task=FLORENCE2_TASKS[0])[FLORENCE2_TASKS[0]]
        return str(answer).strip()


def loaded_family_model(
    family: Family, model: Any, processor: Any, model_id: str, revision: str | None, provenance: dict[str, Any]
) -> LoadedModel:
    """A :class:`LoadedModel` whose stages are the family's."""
    runtime = FamilyRuntime(family, model, processor)
    return LoadedModel(
        model,
        processor,
        getattr(processor, "tokenizer", None),
        model_id,
        revision,
        provenance,
        generate_ids=runtime.generate,
        family=family.name,
        device=str(model.device),
        prepare_inputs=runtime.prepare,
        decode_texts=runtime.decode,
        check_options=runtime.check_options,
        default_generation=family.defaults,
    )


def with_model(loaded: LoadedModel, family: Family, model: Any) -> LoadedModel:
    """The same loaded model with its weights replaced (cast, moved or quantized)."""
    return loaded_family_model(family, model, loaded.processor, loaded.model_id, loaded.revision, loaded.provenance)


def int8_dynamic(loaded: LoadedModel, family: Family, *, in_place: bool = False) -> LoadedModel:
    """Linear layers with int8 weights and dynamically quantized activations (``quantize_dynamic``), on the CPU.

    ``in_place`` quantizes ``loaded``'s own model instead of a copy: for a caller that loaded the model for this
    and nothing else holds it, it saves holding the fp32 weights twice (BLIP-base: a peak of 1.9 GB instead of 2.5).
    """
    import torch

    if loaded.device != "cpu":
        raise ConfigurationError(f"int8 runs on the CPU; {loaded.model_id} is on {loaded.device} (use --device cpu)")
    with warnings.catch_warnings():
        # torch marks torch.ao.quantization deprecated in favour of torchao, which is not a dependency; the
        # eager dynamic quantization used here still ships and works in every torch this package supports.
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated", DeprecationWarning)
        quantized = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            loaded.model, {torch.nn.Linear}, dtype=torch.qint8, inplace=in_place
        )
    return with_model(loaded, family, quantized)
