"""The Lambda image's model steps: which files the download fetches for each family, and what the model becomes.

``download_model.py`` picks files from the hub's file list; it is checked against the files transformers itself
writes for every family and against real file lists of hub repositories (copied from their "Files and versions"
pages, source URLs beside each). ``prepare_model.py`` reads the family from the downloaded config.json with the
core's family detection and prepares the model for the one runtime stage that runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import download_model
import prepare_model
from download_model import files_to_fetch
from imgcaption.backends.base import PROVENANCE_FILE, read_provenance
from imgcaption.backends.registry import load_model, loaded_precision, prepare_for_precision
from imgcaption.testing import FAMILY_MODEL_FACTORIES, save_random_model
from prepare_model import STAGE_FILE, image_stage, prepare

FACTORIES: dict[str, Callable[[Path], Path]] = {"vit-gpt2": save_random_model, **FAMILY_MODEL_FACTORIES}

# Files a hub repository may hold beside a model that the image never needs.
NOT_NEEDED = (
    ".gitattributes",
    "README.md",
    "tf_model.h5",
    "flax_model.msgpack",
    "onnx/model.onnx",
    "onnx/vision_encoder_quantized.onnx",
    "model.gguf",
    "modeling_custom.py",
    "configuration_custom.py",
    "training_args.bin",
)


def saved_files(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {name: factory(root / name) for name, factory in FACTORIES.items()}


@pytest.mark.parametrize("family", sorted(FACTORIES))
def test_everything_transformers_saves_for_a_family_is_fetched_and_nothing_else(
    family: str, family_dirs: dict[str, Path]
) -> None:
    saved = saved_files(family_dirs[family])
    assert sorted(files_to_fetch([*NOT_NEEDED, *saved])) == saved


# Real repositories, as their hub pages list them (README and .gitattributes included).
HUB_LISTINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # https://huggingface.co/Salesforce/blip-image-captioning-base/tree/main: pickled and TF weights only
    "Salesforce/blip-image-captioning-base": (
        (".gitattributes", "README.md", "config.json", "preprocessor_config.json", "pytorch_model.bin",
         "special_tokens_map.json", "tf_model.h5", "tokenizer.json", "tokenizer_config.json", "vocab.txt"),
        ("config.json", "preprocessor_config.json", "pytorch_model.bin", "special_tokens_map.json", "tokenizer.json",
         "tokenizer_config.json", "vocab.txt"),
    ),
    # https://huggingface.co/Salesforce/blip-image-captioning-base/tree/05691134188cc45ae4948c5fd0ec47321842e5b3
    # (a commit that added a screenshot to the repository)
    "Salesforce/blip-image-captioning-base@0569113": (
        (".gitattributes", "README.md", "Screenshot_20240501_151902_com.whatsapp~2.jpg", "config.json",
         "preprocessor_config.json", "pytorch_model.bin", "special_tokens_map.json", "tf_model.h5", "tokenizer.json",
         "tokenizer_config.json", "vocab.txt"),
        ("config.json", "preprocessor_config.json", "pytorch_model.bin", "special_tokens_map.json", "tokenizer.json",
         "tokenizer_config.json", "vocab.txt"),
    ),
    # https://huggingface.co/microsoft/git-base-coco/tree/refs%2Fpr%2F1: safetensors beside the pickled weights
    "microsoft/git-base-coco@refs/pr/1": (
        (".gitattributes", "README.md", "config.json", "generation_config.json", "model.safetensors",
         "preprocessor_config.json", "pytorch_model.bin", "special_tokens_map.json", "tokenizer.json",
         "tokenizer_config.json", "vocab.txt"),
        ("config.json", "generation_config.json", "model.safetensors", "preprocessor_config.json",
         "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"),
    ),
    # https://huggingface.co/HuggingFaceTB/SmolVLM-256M-Instruct/tree/982ff50128fdd980fce0b7d2d286824f0f6ac266
    # (its onnx/ folder's files are not on that page; they look like NOT_NEEDED's onnx/ entries)
    "HuggingFaceTB/SmolVLM-256M-Instruct": (
        (".gitattributes", "README.md", "added_tokens.json", "chat_template.json", "config.json",
         "generation_config.json", "merges.txt", "model.safetensors", "preprocessor_config.json",
         "processor_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"),
        ("added_tokens.json", "chat_template.json", "config.json", "generation_config.json", "merges.txt",
         "model.safetensors", "preprocessor_config.json", "processor_config.json", "special_tokens_map.json",
         "tokenizer.json", "tokenizer_config.json", "vocab.json"),
    ),
    # https://huggingface.co/HuggingFaceTB/SmolVLM2-2.2B-Instruct/tree/refs%2Fpr%2F10: sharded safetensors (the page
    # is cut after special_tokens_map.json)
    "HuggingFaceTB/SmolVLM2-2.2B-Instruct@refs/pr/10": (
        (".gitattributes", "README.md", "added_tokens.json", "chat_template.json", "config.json",
         "generation_config.json", "merges.txt", "model-00001-of-00002.safetensors",
         "model-00002-of-00002.safetensors", "model.safetensors.index.json", "preprocessor_config.json",
         "processor_config.json", "special_tokens_map.json"),
        ("added_tokens.json", "chat_template.json", "config.json", "generation_config.json", "merges.txt",
         "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
         "preprocessor_config.json", "processor_config.json", "special_tokens_map.json"),
    ),
    # https://huggingface.co/pranavSIT/Florence-2-large-ft/tree/main: a Florence-2 in the original remote-code layout
    # (microsoft/Florence-2-*'s); its *.py files are never fetched, so nothing remote runs in the image
    "pranavSIT/Florence-2-large-ft": (
        (".gitattributes", "README.md", "added_tokens.json", "config.json", "configuration_florence2.py",
         "generation_config.json", "merges.txt", "model.safetensors", "modeling_florence2.py",
         "preprocessor_config.json", "processing_florence2.py", "processor_config.json", "special_tokens_map.json",
         "tokenizer.json", "tokenizer_config.json", "vocab.json"),
        ("added_tokens.json", "config.json", "generation_config.json", "merges.txt", "model.safetensors",
         "preprocessor_config.json", "processor_config.json", "special_tokens_map.json", "tokenizer.json",
         "tokenizer_config.json", "vocab.json"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("repository", sorted(HUB_LISTINGS))
def test_real_hub_repositories_give_their_config_weights_and_processor_files(repository: str) -> None:
    listing, needed = HUB_LISTINGS[repository]
    assert sorted(files_to_fetch(listing)) == sorted(needed)


@pytest.mark.parametrize(
    ("listing", "message"),
    [
        (("README.md", "config.json", "tf_model.h5", "flax_model.msgpack"), "no PyTorch weights"),
        (("README.md", "config.json", "onnx/encoder_model.onnx"), "no PyTorch weights"),
        (("README.md", "model.safetensors", "tokenizer.json"), "no config.json"),
    ],
)
def test_a_repository_the_image_cannot_run_fails_the_download_with_the_reason(
    listing: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SystemExit, match=message):
        files_to_fetch(listing)


class LocalHub:
    """The two huggingface_hub calls the download makes, served from a local model directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fetched: list[str] = []

    def list_repo_files(self, repo_id: str, revision: str | None = None) -> list[str]:
        return [*saved_files(self.directory), "README.md", "tf_model.h5"]

    def hf_hub_download(self, repo_id: str, filename: str, *, revision: str, local_dir: Path) -> str:
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((self.directory / filename).read_bytes())
        self.fetched.append(filename)
        return str(target)


def test_a_downloaded_model_is_fp32_to_the_core_so_int8_quantizes_it_at_load(
    family_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    hub = LocalHub(family_dirs["blip"])
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: hub)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub.hf_hub_download)
    commit = "0" * 40
    download_model.main("Salesforce/blip-image-captioning-base", commit, str(tmp_path / "model"))

    assert sorted(hub.fetched) == saved_files(family_dirs["blip"])
    assert read_provenance(tmp_path / "model") == {
        "model_id": "Salesforce/blip-image-captioning-base",
        "revision": commit,
        "precision": "fp32",
    }
    loaded = load_model(str(tmp_path / "model"))
    assert (loaded.model_id, loaded.revision, loaded_precision(loaded)) == (
        "Salesforce/blip-image-captioning-base",
        commit,
        "fp32",
    )
    quantized = prepare_for_precision(loaded, "int8").model
    assert any(isinstance(module, torch.ao.nn.quantized.dynamic.Linear) for module in quantized.modules())


@pytest.mark.parametrize(
    ("family", "precision", "stage"),
    [
        ("vit-gpt2", "int8", "runtime"),
        ("vit-gpt2", "fp32", "runtime-torch"),
        *((family, precision, "runtime-torch") for family in FAMILY_MODEL_FACTORIES for precision in ("fp32", "int8")),
    ],
)
def test_only_vit_gpt2_in_int8_runs_in_the_slim_onnx_stage(family: str, precision: str, stage: str) -> None:
    assert image_stage(family, precision) == stage


def test_a_gpu_precision_is_refused_at_build_time() -> None:
    with pytest.raises(SystemExit, match="fp32, int8"):
        image_stage("blip", "fp16")


def copy_of(directory: Path, target: Path) -> Path:
    import shutil

    return Path(shutil.copytree(directory, target))


@pytest.mark.parametrize(("family", "precision"), [("blip", "int8"), ("florence2", "fp32"), ("vit-gpt2", "fp32")])
def test_a_torch_stage_model_is_loaded_once_and_kept_as_downloaded(
    family: str, precision: str, family_dirs: dict[str, Path], tmp_path: Path
) -> None:
    source = copy_of(family_dirs[family], tmp_path / "source")
    files = saved_files(source)

    assert prepare(source, tmp_path / "model", precision, family) == "runtime-torch"

    assert not source.exists()
    assert saved_files(tmp_path / "model") == sorted([*files, STAGE_FILE])
    assert (tmp_path / "model" / STAGE_FILE).read_text().strip() == "runtime-torch"


@pytest.mark.slow
def test_vit_gpt2_in_int8_becomes_the_onnx_artifact_of_the_slim_stage(tmp_path: Path) -> None:
    source = save_random_model(tmp_path / "source")

    assert prepare(source, tmp_path / "model", "int8") == "runtime"

    assert not source.exists()
    assert {"encoder.onnx", "decoder.onnx", PROVENANCE_FILE, STAGE_FILE} <= set(saved_files(tmp_path / "model"))
    assert read_provenance(tmp_path / "model")["backend"] == "onnxruntime"
    assert read_provenance(tmp_path / "model")["int8_target"] == "avx2"  # x86 when TARGETARCH is not set
    assert (tmp_path / "model" / STAGE_FILE).read_text().strip() == "runtime"


@pytest.mark.parametrize(("architecture", "target"), [("amd64", "avx2"), ("arm64", "arm"), (None, "avx2")])
def test_the_int8_weights_are_quantized_for_the_image_s_architecture(architecture: str | None, target: str) -> None:
    from prepare_model import int8_target_for

    assert int8_target_for(architecture) == target
    assert "ARG TARGETARCH" in (Path(prepare_model.__file__).parent / "Dockerfile").read_text()


def test_a_family_that_is_not_the_configs_fails_the_build_naming_both(
    family_dirs: dict[str, Path], tmp_path: Path
) -> None:
    source = copy_of(family_dirs["git"], tmp_path / "source")
    with pytest.raises(SystemExit, match=r"MODEL_FAMILY is 'blip', but the downloaded config.json names a git model"):
        prepare(source, tmp_path / "model", "int8", "blip")
    assert not (tmp_path / "model").exists()


def test_a_model_no_family_runs_fails_the_build_with_the_supported_families(
    family_dirs: dict[str, Path], tmp_path: Path
) -> None:
    import json

    source = copy_of(family_dirs["blip"], tmp_path / "source")
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps(config | {"architectures": ["BlipForQuestionAnswering"]}))
    with pytest.raises(SystemExit, match=r"not a captioning model imgcaption can run.*Supported families"):
        prepare(source, tmp_path / "model", "fp32")


def test_a_model_that_does_not_load_fails_the_build_not_the_first_invocation(
    family_dirs: dict[str, Path], tmp_path: Path
) -> None:
    source = copy_of(family_dirs["chat"], tmp_path / "source")
    (source / "chat_template.jinja").unlink()  # a chat model without its template cannot take an instruction
    with pytest.raises(SystemExit, match=r"the chat model does not load: .*chat template"):
        prepare(source, tmp_path / "model", "int8", "chat")
    assert not (tmp_path / "model").exists()


def test_prepare_model_is_what_the_dockerfile_runs() -> None:
    dockerfile = (Path(prepare_model.__file__).parent / "Dockerfile").read_text()
    assert 'python /tmp/prepare_model.py /opt/model-source /opt/model "${PRECISION}" "${MODEL_FAMILY}"' in dockerfile
    assert dockerfile.count(f"/opt/model/{STAGE_FILE}") == 2  # each runtime stage checks it
