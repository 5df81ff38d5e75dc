"""Random-weight model directories of the other families (BLIP, GIT, Florence-2, a chat model), built locally.

Each is its family's transformers config class with the published checkpoint's settings kept where they shape the
code path (token ids, image-token layout, normalization, processor classes) and its sizes shrunk, a tokenizer
built here with ``tokenizers`` (a WordPiece for the BERT-tokenized families, a byte-level BPE for the others), and
the family's own processor saved with it, so ``Captioner.from_pretrained(directory)`` runs exactly the path the real
checkpoint runs. Weights are drawn with a wide init so the random models' captions differ from image to image.
``size="full"`` keeps the published checkpoint's layer sizes, vocabulary and image size instead (with its init
range), for measuring memory and time; the tokenizer stays the small one, which skips ids it does not know.
The chat model is a LLaVA; :func:`save_random_smolvlm` builds a SmolVLM too (an Idefics3, whose Pillow image
processor needs neither torchvision nor num2words; SmolVLM2's processor would need both).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgcaption.testing.random_model import ModelSize

_WORDS = ("a", "an", "the", "of", "on", "in", "with", "and", "photography", "picture", "woman", "man", "dog",
          "cat", "sitting", "beach", "street", "red", "blue", "green", "white", "two", "car", "sky")  # fmt: skip

# Text the byte-level BPE is trained on: every prompt the tests use, so they tokenize to a few tokens.
_BPE_CORPUS = (
    "a photography of a woman sitting on the beach with her dog",
    "a red circle on the left of a blue square",
    "What does the image describe?",
    "Describe in detail what is shown in the image.",
    "Describe with a paragraph what is shown in the image.",
    "Describe this image in one sentence.",
    "Write a short caption for this photo.",
    "USER: ASSISTANT:",
)

_WIDE_INIT = 0.5  # random weights this wide make a caption depend on the image; real checkpoints use 0.02

_TINY_VIT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 64,
    "patch_size": 16,
    "initializer_range": _WIDE_INIT,
}
"""The vision tower BLIP and GIT share here: 2 layers of width 32 on 64 px images in 16 px patches."""

_VIT_BASE = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "patch_size": 16,
    "initializer_range": 0.02,
}
"""ViT-B/16, the vision tower of blip-image-captioning-base (at 384 px) and git-base-coco (at 224 px)."""

_FULL_INIT = 0.02
"""The published checkpoints' init range: full-size models are for memory and time, not for varied captions."""


def _wordpiece_tokenizer() -> Any:
    """A BERT-style uncased WordPiece ([CLS] text [SEP]) over a few words and single letters."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    letters = [chr(code) for code in range(ord("a"), ord("z") + 1)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *_WORDS, *letters, *(f"##{c}" for c in letters)]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    unknown = "[UNK]"
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token=unknown))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece()
    special = {
        "unk_token": unknown,
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
        "bos_token": "[DEC]",  # BLIP's decoder start token ([DEC], 30522 in the real vocabulary)
    }
    return _transformers().BertTokenizerFast(tokenizer_object=tokenizer, model_max_length=512, **special)


def _byte_level_bpe(special_tokens: list[str]) -> Any:
    """A byte-level BPE (GPT-2/BART style) trained on a few sentences; ``special_tokens`` take the first ids."""
    from tokenizers import ByteLevelBPETokenizer

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(
        list(_BPE_CORPUS), vocab_size=400, min_frequency=1, special_tokens=special_tokens, show_progress=False
    )
    return tokenizer._tokenizer


def _save(model_class: Any, config: Any, processor: Any, directory: str | Path, seed: int) -> Path:
    import torch

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = model_class(config)
    model.eval()
    model.save_pretrained(target)
    processor.save_pretrained(target)
    return target


def save_random_blip(directory: str | Path, seed: int = 0, *, size: ModelSize = "tiny") -> Path:
    """BLIP captioning; settings from Salesforce/blip-image-captioning-base's config.json and
    preprocessor_config.json (384 px, CLIP mean/std, BlipImageProcessor, BERT tokenizer, [DEC] start token,
    [SEP] end), shrunk to 2 layers of width 32 on 64 px images; ``size="full"`` keeps ViT-B/16 at 384 px and the
    12-layer, 768-wide text decoder over the 30,524-token vocabulary."""
    transformers = _transformers()

    tokenizer = _wordpiece_tokenizer()
    text_config: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 64,
        "bos_token_id": tokenizer.bos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "eos_token_id": tokenizer.sep_token_id,
        "initializer_range": _WIDE_INIT,
    }
    vision_config, projection_dim, pixels, init = dict(_TINY_VIT), 32, 64, _WIDE_INIT
    if size == "full":
        text_config |= {
            "vocab_size": 30524,
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "max_position_embeddings": 512,
            "initializer_range": _FULL_INIT,
        }
        vision_config, projection_dim, pixels, init = _VIT_BASE | {"image_size": 384}, 512, 384, _FULL_INIT
    config = transformers.BlipConfig(
        text_config=text_config,
        vision_config=vision_config,
        projection_dim=projection_dim,
        initializer_range=init,
    )
    image_processor = _pil_class(transformers, "BlipImageProcessor")(
        size={"height": pixels, "width": pixels},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    processor = transformers.BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    return _save(transformers.BlipForConditionalGeneration, config, processor, directory, seed)


def save_random_git(directory: str | Path, seed: int = 0, *, size: ModelSize = "tiny") -> Path:
    """GIT; settings from microsoft/git-base-coco (CLIPImageProcessor 224 px, bert-base-uncased tokenizer with
    [CLS] as start and [SEP] as end), shrunk to 2 layers of width 32 on 64 px images; ``size="full"`` keeps the
    CLIP ViT-B/16 at 224 px and the 6-layer, 768-wide text decoder over the 30,522-token vocabulary."""
    transformers = _transformers()

    tokenizer = _wordpiece_tokenizer()
    sizes: dict[str, Any] = {
        "vision_config": dict(_TINY_VIT),
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "initializer_range": _WIDE_INIT,
    }
    pixels = 64
    if size == "full":
        sizes = {
            "vision_config": _VIT_BASE | {"image_size": 224},
            "vocab_size": 30522,
            "hidden_size": 768,
            "num_hidden_layers": 6,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "max_position_embeddings": 1024,
            "initializer_range": _FULL_INIT,
        }
        pixels = 224
    config = transformers.GitConfig(
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **sizes,
    )
    image_processor = _pil_class(transformers, "CLIPImageProcessor")(
        size={"shortest_edge": pixels}, crop_size={"height": pixels, "width": pixels}
    )
    processor = transformers.GitProcessor(image_processor=image_processor, tokenizer=tokenizer)
    return _save(transformers.GitForCausalLM, config, processor, directory, seed)


def save_random_florence2(directory: str | Path, seed: int = 0, *, size: ModelSize = "tiny") -> Path:
    """Florence-2; settings from microsoft/Florence-2-base's preprocessor_config.json (CLIPImageProcessor,
    ImageNet mean/std, no centre crop, ``image_seq_length`` = patches after the DaViT strides + 1) and config.json
    (BART with </s> as decoder start), shrunk to a two-stage DaViT of width 32 on 64 px images (8×8+1 = 65 image
    tokens) and a one-layer BART; ``size="full"`` keeps Florence-2-base's four-stage DaViT (widths 128-1024,
    depths 1, 1, 9, 1) on 768 px images (24×24+1 = 577 image tokens) and its 6+6-layer, 768-wide BART over the
    51,289-token vocabulary."""
    from tokenizers import processors

    transformers = _transformers()

    raw = _byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>", "<image>"])
    raw.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), add_prefix_space=False)
    special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    special |= {"mask_token": "<mask>", "cls_token": "<s>", "sep_token": "</s>"}
    tokenizer = transformers.BartTokenizerFast(
        tokenizer_object=raw, extra_special_tokens={"image_token": "<image>"}, **special
    )
    text_config: dict[str, Any] = {
        "model_type": "bart",
        "vocab_size": len(tokenizer),
        "d_model": 32,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "max_position_embeddings": 128,
        "bos_token_id": 0,
        "pad_token_id": 1,
        "eos_token_id": 2,
        "decoder_start_token_id": 2,
        "init_std": _WIDE_INIT,
    }
    vision_config: dict[str, Any] = {
        "depths": [1, 1],
        "patch_size": [7, 3],
        "patch_stride": [4, 2],
        "patch_padding": [3, 1],
        "patch_prenorm": [False, True],
        "embed_dim": [16, 32],
        "num_heads": [2, 2],
        "num_groups": [2, 2],
        "window_size": 2,
        "projection_dim": 32,
        "max_position_embeddings": 16,
        "initializer_range": _WIDE_INIT,
    }
    pixels, image_tokens = 64, 65
    if size == "full":
        text_config |= {
            "vocab_size": 51289,
            "d_model": 768,
            "encoder_layers": 6,
            "decoder_layers": 6,
            "encoder_attention_heads": 12,
            "decoder_attention_heads": 12,
            "encoder_ffn_dim": 3072,
            "decoder_ffn_dim": 3072,
            "max_position_embeddings": 1024,
            "init_std": _FULL_INIT,
        }
        # the DaViT of Florence-2-base is transformers' default vision config; only the projection is narrower
        vision_config = {"projection_dim": 768, "initializer_range": _FULL_INIT}
        pixels, image_tokens = 768, 577
    config = transformers.Florence2Config(
        text_config=text_config, vision_config=vision_config, image_token_id=tokenizer.image_token_id
    )
    image_processor = _pil_class(transformers, "CLIPImageProcessor")(
        size={"height": pixels, "width": pixels},
        do_center_crop=False,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    image_processor.image_seq_length = image_tokens
    processor = transformers.Florence2Processor(
        image_processor=image_processor, tokenizer=tokenizer, post_processor_config={"pure_text": {}}
    )
    return _save(transformers.Florence2ForConditionalGeneration, config, processor, directory, seed)


LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    "{% if message['role'] == 'user' %} {% else %}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
"""llava-hf/llava-1.5-7b-hf's conversation layout: ``USER: <image>\\n{instruction} ASSISTANT:``."""


def save_random_chat_vlm(directory: str | Path, seed: int = 0, *, size: ModelSize = "tiny") -> Path:
    """A chat VLM (LLaVA, run through ``AutoModelForImageTextToText``); settings from llava-hf/llava-1.5-7b-hf
    (CLIP vision tower read at layer -2 with the CLS feature dropped, a llama decoder, the processor's chat
    template), shrunk to 2 layers of width 32 on 32 px images (16 image tokens). LLaVA-1.5 itself (7B) is no
    Lambda model, so ``size="full"`` is a LLaVA with the tower sizes of the smallest chat captioner,
    HuggingFaceTB/SmolVLM-256M-Instruct: a 12-layer, 768-wide vision tower on 512 px images in 16 px patches
    (1,024 image tokens) and SmolLM2-135M's decoder (30 layers of width 576, 49,280-token vocabulary)."""
    transformers = _transformers()

    special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=_byte_level_bpe(["<unk>", "<s>", "</s>", "<pad>", "<image>"]),
        extra_special_tokens={"image_token": "<image>"},
        padding_side="left",
        **special,
    )
    vision_config: dict[str, Any] = {
        "model_type": "clip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
        "projection_dim": 32,
    }
    text_config: dict[str, Any] = {
        "model_type": "llama",
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "initializer_range": _WIDE_INIT,
    }
    if size == "full":
        vision_config |= _VIT_BASE | {"image_size": 512, "projection_dim": 768}
        text_config |= {
            "vocab_size": 49280,
            "hidden_size": 576,
            "intermediate_size": 1536,
            "num_hidden_layers": 30,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "max_position_embeddings": 8192,
            "initializer_range": _FULL_INIT,
        }
    pixels, patch = int(vision_config["image_size"]), int(vision_config["patch_size"])
    config = transformers.LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    image_processor = _pil_class(transformers, "CLIPImageProcessor")(
        size={"shortest_edge": pixels}, crop_size={"height": pixels, "width": pixels}
    )
    processor = transformers.LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
    return _save(transformers.AutoModelForImageTextToText.from_config, config, processor, directory, seed)


def _transformers() -> Any:
    """transformers, typed loosely: these factories build configs by keyword, as the hub's config.json files do."""
    import importlib

    return importlib.import_module("transformers")


def _pil_class(transformers: Any, name: str) -> Any:
    """The Pillow image processor (transformers 5 names it ``…Pil``; the plain name needs torchvision)."""
    return getattr(transformers, f"{name}Pil", None) or getattr(transformers, name)


FAMILY_MODEL_FACTORIES: dict[str, Callable[..., Path]] = {
    "blip": save_random_blip,
    "git": save_random_git,
    "florence2": save_random_florence2,
    "chat": save_random_chat_vlm,
}
"""The factory of each family's random-weight model directory, by family name."""


SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
"""HuggingFaceTB/SmolVLM-256M-Instruct's chat template: ``<|im_start|>User:<image>{instruction}<end_of_utterance>``
then ``Assistant:``."""


def save_random_smolvlm(directory: str | Path, seed: int = 0) -> Path:
    """SmolVLM (a chat model, run through ``AutoModelForImageTextToText``); settings from
    HuggingFaceTB/SmolVLM-256M-Instruct, whose config.json is an Idefics3 (``model_type`` idefics3): a SigLIP
    vision tower, pixel-shuffle connector (``scale_factor``), llama decoder with tied embeddings, and its processor
    (``Idefics3Processor``: images split into a grid of tiles plus a global view, each tile's tokens framed by
    ``<fake_token_around_image>`` and ``<row_r_col_c>``, mean/std 0.5, its chat template, ``<end_of_utterance>`` as
    end of sequence). Shrunk to 2 layers of width 32 on 32 px tiles (``max_image_size``) of images resized to at
    most 64 px (``size``), so 4 image tokens a tile (``image_seq_len`` = (32/8)² / 2²).

    The slow (Pillow) image processor needs neither torchvision nor num2words; SmolVLM2 (``model_type`` smolvlm)
    would need both (its processor requires num2words and its video processor torchvision).
    """
    transformers = _transformers()

    grid = [f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)]
    media = ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>"]
    special = {"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>"}
    special |= {"pad_token": "<|im_end|>", "unk_token": "<|endoftext|>"}
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=_byte_level_bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>", *media, *grid]),
        padding_side="left",
        **special,
    )
    config = transformers.Idefics3Config(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
            "initializer_range": _WIDE_INIT,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,  # grouped-query attention, as the checkpoint's 9 heads over 3
            "max_position_embeddings": 512,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "tie_word_embeddings": True,
            "initializer_range": _WIDE_INIT,
        },
        scale_factor=2,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    image_processor = _pil_class(transformers, "Idefics3ImageProcessor")(
        do_image_splitting=True,
        max_image_size={"longest_edge": 32},
        size={"longest_edge": 64},
        resample=1,  # Lanczos, as the checkpoint
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    processor = transformers.Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4, chat_template=SMOLVLM_CHAT_TEMPLATE
    )
    return _save(transformers.Idefics3ForConditionalGeneration, config, processor, directory, seed)
