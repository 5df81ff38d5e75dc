"""The benchmark of one model family: our fp32 and int8 captioners against the family's own ``generate`` call.

For a model directory of any family (:mod:`imgcaption.backends.families`), three ways to caption a PIL image:

* ``reference`` — the family's model card call, written out here independently of our code: its ``AutoProcessor``
  on the image (and prompt, or chat template), its transformers class's ``model.generate`` with the same options,
  and the processor's decoding;
* ``fp32`` — :class:`~imgcaption.captioner.Captioner` in fp32 (for vit-gpt2: the exact decoder);
* ``int8`` — the same model with ``precision="int8"`` (``quantize_dynamic`` of its Linear layers at load time; for
  vit-gpt2 the int8 runtime).

Every timed call goes from the PIL image to the caption text, one image at a time. The modes are interleaved image
by image, in an order that rotates, so machine drift hits them alike; each mode captions every image once untimed
first (lazy initialisation, allocator warm-up). Reported: medians, and how many token positions and whole captions
of fp32 and int8 agree with the reference.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgcaption.generation import GenerationOptions

if TYPE_CHECKING:
    from PIL import Image

    from imgcaption.backends.families import Family
    from imgcaption.captioner import Captioner

FAMILY_MODES = ("reference", "fp32", "int8")
FAMILY_MODE_NAMES = {
    "reference": "the family's own generate",
    "fp32": "imgcaption fp32",
    "int8": "imgcaption int8 (torch)",
}


@dataclass
class FamilyBenchConfig:
    model_dir: Path
    image_paths: Sequence[Path] = ()
    threads: int = 1
    repeats: int = 3
    num_beams: int | None = None
    max_new_tokens: int | None = None
    prompt: str | None = None
    """Options of every call, over the family's defaults (and its default prompt, if it has one) where None."""
    progress: Callable[[str], None] = lambda _: None


@dataclass
class ModeTiming:
    mode: str
    seconds: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class Agreement:
    mode: str
    """``fp32`` or ``int8``, compared with ``reference``."""
    identical_captions: float
    token_agreement: float


@dataclass
class FamilyBenchResult:
    model: str
    family: str
    parameters: int
    machine: dict[str, Any]
    generation: dict[str, Any]
    images: list[str]
    repeats: int
    timings: list[ModeTiming]
    agreement: list[Agreement]
    captions: dict[str, list[str]]
    """Each mode's captions of the images, in order (random weights make them noise; they show it ran)."""

    def timing(self, mode: str) -> ModeTiming:
        return next(timing for timing in self.timings if timing.mode == mode)

    def to_json(self) -> str:
        data = asdict(self)
        for timing, raw in zip(self.timings, data["timings"], strict=True):
            raw["p50"] = timing.p50
        return json.dumps(data, indent=2)


# ------------------------------------------------------------------------------------------------ the reference


class ReferenceCaptioner:
    """A family's model card call: its processor, its transformers class's ``generate``, its decoding."""

    def __init__(self, family: Family, model_dir: Path) -> None:
        import transformers

        self.family = family
        self.processor: Any
        self.tokenizer: Any
        model_class = getattr(transformers, family.model_class)
        self.model = model_class.from_pretrained(model_dir).eval()
        if family.model_class == "VisionEncoderDecoderModel":  # vit-gpt2's card: ViTImageProcessor and tokenizer
            # (its Pillow twin: the plain name needs torchvision in transformers 5)
            image_processor = getattr(transformers, "ViTImageProcessorPil", None) or transformers.ViTImageProcessor
            self.processor = image_processor.from_pretrained(model_dir)
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
        else:
            self.processor = transformers.AutoProcessor.from_pretrained(model_dir)  # type: ignore[no-untyped-call]
            self.tokenizer = self.processor.tokenizer

    def caption(self, image: Image.Image, options: GenerationOptions) -> tuple[list[int], str]:
        """The caption's token ids (a chat model's answer only) and its text."""
        kind, prompt, kwargs = self.family.prompt, options.prompt, options.generate_kwargs()
        processor, model = self.processor, self.model
        if kind == "instruction":
            content = [{"type": "image", "image": image}, {"type": "text", "text": prompt}]
            inputs = processor.apply_chat_template(
                [{"role": "user", "content": content}],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
            )
            answer = model.generate(**inputs, **kwargs)[:, inputs["input_ids"].shape[1] :]
            return answer[0].tolist(), processor.batch_decode(answer, skip_special_tokens=True)[0].strip()
        if kind == "task":
            inputs = processor(text=prompt, images=image, return_tensors="pt")
            out = model.generate(**inputs, **kwargs)
            text = processor.batch_decode(out, skip_special_tokens=False)[0]
            parsed = processor.post_process_generation(text, task=prompt, image_size=image.size)
            return out[0].tolist(), str(parsed[prompt]).strip()
        if self.family.model_class == "VisionEncoderDecoderModel":
            out = model.generate(processor(images=image, return_tensors="pt").pixel_values, **kwargs)
            return out[0].tolist(), self.tokenizer.batch_decode(out, skip_special_tokens=True)[0].strip()
        text_kwargs = {"text": prompt} if prompt is not None else {}
        out = model.generate(**processor(images=image, return_tensors="pt", **text_kwargs), **kwargs)
        return out[0].tolist(), processor.batch_decode(out, skip_special_tokens=True)[0].strip()


# ------------------------------------------------------------------------------------------------ the run


def run_family_benchmark(config: FamilyBenchConfig) -> FamilyBenchResult:
    """Load the three captioners, caption every image with each (interleaved, ``repeats`` passes), compare tokens."""
    import torch

    from imgcaption.backends.registry import read_header
    from imgcaption.bench.runner import default_images, load_images
    from imgcaption.captioner import Captioner

    say = config.progress
    paths = list(config.image_paths) or default_images()
    images = load_images(paths)
    torch.set_num_threads(config.threads)
    family = read_header(str(config.model_dir)).family
    say(f"loading {config.model_dir} ({family.name}): the reference, fp32 and int8")
    reference = ReferenceCaptioner(family, config.model_dir)
    ours: dict[str, Captioner] = {
        precision: Captioner.from_pretrained(
            str(config.model_dir), precision=precision, device="cpu", threads=config.threads
        )
        for precision in ("fp32", "int8")
    }
    fp32 = ours["fp32"]
    asked = fp32.generation.with_overrides(num_beams=config.num_beams, max_new_tokens=config.max_new_tokens)
    options = fp32.options(asked, prompt=config.prompt)  # checked by the family, its default prompt filled in
    torch.set_num_threads(config.threads)

    def run(mode: str, image: Image.Image) -> tuple[list[int], str]:
        if mode == "reference":
            return reference.caption(image, options)
        captioner = ours[mode]
        tokens = captioner.forward(captioner.preprocess([image]), options)
        return tokens[0].tolist(), captioner.postprocess(tokens)[0]

    outputs: dict[str, list[tuple[list[int], str]]] = {
        mode: [run(mode, image) for image in images] for mode in FAMILY_MODES
    }  # the untimed first pass
    timings = {mode: ModeTiming(mode) for mode in FAMILY_MODES}
    turn = 0
    for repeat in range(config.repeats):
        for index, image in enumerate(images):
            say(f"{family.name}: repeat {repeat + 1}/{config.repeats}, image {index + 1}/{len(images)}")
            order = FAMILY_MODES[turn % 3 :] + FAMILY_MODES[: turn % 3]
            turn += 1
            for mode in order:
                started = time.perf_counter()
                run(mode, image)
                timings[mode].seconds.append(time.perf_counter() - started)
    pad = getattr(reference.tokenizer, "pad_token_id", None)
    agreement = [_agreement(mode, outputs["reference"], outputs[mode], pad) for mode in ("fp32", "int8")]
    return FamilyBenchResult(
        model=str(config.model_dir),
        family=family.name,
        parameters=sum(parameter.numel() for parameter in reference.model.parameters()),
        machine=describe_cpu(config.threads),
        generation=options.model_dump(),
        images=[path.name for path in paths],
        repeats=config.repeats,
        timings=list(timings.values()),
        agreement=agreement,
        captions={mode: [text for _, text in outputs[mode]] for mode in FAMILY_MODES},
    )


def _agreement(
    mode: str, reference: Sequence[tuple[list[int], str]], ours: Sequence[tuple[list[int], str]], pad: int | None
) -> Agreement:
    """Whole captions that are the reference's, and token positions that are (trailing padding left out; a
    caption longer or shorter than the reference's disagrees at every position one of them lacks)."""
    from imgcaption.bench.runner import token_agreement

    matches = total = identical = 0
    for (expected, expected_text), (got, text) in zip(reference, ours, strict=True):
        hit, length = token_agreement(_trimmed(expected, pad), _trimmed(got, pad), pad=-1)
        matches, total = matches + hit, total + length
        identical += expected == got and expected_text == text
    return Agreement(mode, identical / len(reference), matches / total if total else 1.0)


def _trimmed(tokens: list[int], pad: int | None) -> list[int]:
    end = len(tokens)
    while pad is not None and end > 0 and tokens[end - 1] == pad:
        end -= 1
    return tokens[:end]


def describe_cpu(threads: int) -> dict[str, Any]:
    """The CPU (``/proc/cpuinfo``'s model name), its int8 instructions, the runtimes, the threads used."""
    import torch
    import transformers

    from imgcaption.backends.cpu_int8 import cpu_flags, cpu_model_name, int8_instruction_set

    flags = cpu_flags()
    return {
        "cpu": cpu_model_name(),
        "avx512_vnni": "avx512_vnni" in flags,
        "int8_instructions": int8_instruction_set(flags),
        "threads": threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "quantized_engine": torch.backends.quantized.engine,
    }


# ------------------------------------------------------------------------------------------------ the report


def _describe_agreement(agreement: Agreement) -> str:
    return f"{agreement.token_agreement:.0%} of tokens, {agreement.identical_captions:.0%} of captions"


def _describe_options(options: GenerationOptions) -> str:
    limit = f"{options.max_new_tokens} new tokens" if options.max_new_tokens else f"{options.max_length} tokens"
    return f"{options.num_beams} beams, {limit}" + (f", prompt `{options.prompt}`" if options.prompt else "")


def render_family_section(results: Sequence[FamilyBenchResult]) -> str:
    """Markdown: one row per family, seconds per image (median) of each mode and the ratios that matter."""
    if not results:
        return ""
    machine = results[0].machine
    lines = [
        f"Machine: {machine['cpu']} (AVX-512 VNNI: {'yes' if machine['avx512_vnni'] else 'no'}; int8 via "
        f"{machine['int8_instructions']}), {machine['threads']} thread(s), torch {machine['torch']}, "
        f"transformers {machine['transformers']}.",
        "",
        "| family | model | parameters | options | "
        + " | ".join(f"{FAMILY_MODE_NAMES[mode]} s/image" for mode in FAMILY_MODES)
        + " | fp32 speed-up vs the family's generate | int8 speed-up vs fp32 | int8 agreement with the family's"
        " generate | fp32 agreement |",
        "|---|---|---|---|" + "---|" * len(FAMILY_MODES) + "---|---|---|---|",
    ]
    for result in results:
        p50 = {mode: result.timing(mode).p50 for mode in FAMILY_MODES}
        agree = {row.mode: row for row in result.agreement}
        options = _describe_options(GenerationOptions.model_validate(result.generation))
        lines.append(
            f"| {result.family} | {Path(result.model).name} | {result.parameters / 1e6:.0f} M | {options} | "
            + " | ".join(f"{p50[mode]:.3f}" for mode in FAMILY_MODES)
            + f" | {p50['reference'] / p50['fp32']:.2f}× | {p50['fp32'] / p50['int8']:.2f}× | "
            f"{_describe_agreement(agree['int8'])} | {_describe_agreement(agree['fp32'])} |"
        )
    images = sorted({name for result in results for name in result.images})
    lines += [
        "",
        f"Medians of {results[0].repeats} interleaved passes over {len(images)} image(s) ({', '.join(images)}), one "
        "image per call, PIL image to caption text, after one untimed pass.",
    ]
    return "\n".join(lines) + "\n"
