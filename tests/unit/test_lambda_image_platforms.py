"""Every Lambda image stage's packages have wheels for the image's platform, on both architectures the stack offers.

The image cannot be built here (no Docker), but the step that broke it can be checked: pip resolving the stage's
package set for the base image's Python and glibc. The python3.11 Lambda base image runs on Amazon Linux 2 (glibc
2.26); torch, onnxruntime and pillow-heif publish manylinux_2_28 wheels only, so every build failed at its first
``pip install``. With ``FROM public.ecr.aws/lambda/python:3.11`` put back in the Dockerfile,
``test_every_stage_resolves_for_its_base_image`` fails naming pillow, numpy, onnxruntime, onnx and pillow-heif
(checked once).

These tests need PyPI (CI reaches it); offline they skip with the reason, never silently.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from stage_requirements import stage_requirements

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "adapters" / "lambda" / "Dockerfile"
CONSTRAINTS = ROOT / "constraints.txt"
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}  # the CDK setting's names → wheel platform names
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@dataclass(frozen=True)
class BaseImage:
    python: str
    glibc: tuple[int, int]


# AWS's Lambda base images: python3.11 and older run on Amazon Linux 2, python3.12 and newer on Amazon Linux 2023.
BASE_IMAGES = {
    "public.ecr.aws/lambda/python:3.11": BaseImage("3.11", (2, 26)),
    "public.ecr.aws/lambda/python:3.12": BaseImage("3.12", (2, 34)),
    "public.ecr.aws/lambda/python:3.13": BaseImage("3.13", (2, 34)),
}


@dataclass(frozen=True)
class Stage:
    name: str
    base: str  # an image, or the stage it builds on
    extras: tuple[str, ...]  # what its `stage_requirements.py` line installs; empty if it installs none itself


def dockerfile_stages() -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    for block in re.split(r"(?m)^(?=FROM )", DOCKERFILE.read_text()):
        header = re.match(r"FROM (\S+) AS (\S+)", block)
        if not header:
            continue
        installs = re.search(r"stage_requirements\.py pyproject\.toml (\S+)", block)
        extras = tuple(installs[1].split(",")) if installs else ()
        stages[header[2]] = Stage(header[2], header[1], extras)
    return stages


def image_of(stage: Stage, stages: dict[str, Stage]) -> str:
    while stage.base in stages:
        stage = stages[stage.base]
    return stage.base


def manylinux_platforms(glibc: tuple[int, int], machine: str) -> list[str]:
    """Every manylinux tag a glibc accepts (PEP 600), newest first, with the legacy aliases pip also matches."""
    major, minor = glibc
    platforms = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 16, -1)]
    platforms.append(f"manylinux2014_{machine}")
    if machine == "x86_64":
        platforms += [f"manylinux_2_{m}_{machine}" for m in (12, 5)] + [f"manylinux2010_{machine}", "manylinux1_x86_64"]
    return platforms


def resolve(
    requirements: list[str],
    image: BaseImage,
    machine: str,
    tmp: Path,
    *,
    index_url: str | None = None,
    with_dependencies: bool = True,
) -> dict[str, str]:
    """pip's resolution for that platform (binary wheels only, our constraints): {package: wheel file}.

    Fails naming every requirement that has no wheel of its pinned version there.
    """
    result, report = run_pip(requirements, image, machine, tmp, index_url, with_dependencies)
    if result.returncode != 0:
        alone = [
            (r, run_pip([r], image, machine, tmp / str(n), index_url, False)[0]) for n, r in enumerate(requirements)
        ]
        missing = [requirement for requirement, single in alone if single.returncode != 0]
        pytest.fail(
            f"no wheel for {', '.join(missing) or 'a dependency'} (as pinned by constraints.txt) on {machine}, "
            f"Python {image.python}, glibc {image.glibc[0]}.{image.glibc[1]}:\n{result.stderr[-3000:]}"
        )
    installs = json.loads(report.read_text())["install"]
    return {canonical(item["metadata"]["name"]): item["download_info"]["url"].rsplit("/", 1)[-1] for item in installs}


def run_pip(
    requirements: list[str],
    image: BaseImage,
    machine: str,
    tmp: Path,
    index_url: str | None,
    with_dependencies: bool,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``pip install --dry-run`` for the image's platform; only the packages' metadata is fetched.

    pip's own configuration is ignored (PIP_CONFIG_FILE=os.devnull), so a local wheel cache or index on the machine
    running the test cannot stand in for the real index.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    report = tmp / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    command += ["--report", str(report), "--target", str(tmp / "target"), "--only-binary=:all:"]
    command += [
        "--python-version",
        image.python,
        "--implementation",
        "cp",
        "--abi",
        f"cp{image.python.replace('.', '')}",
    ]
    for platform in manylinux_platforms(image.glibc, machine):
        command += ["--platform", platform]
    if index_url:
        command += ["--index-url", index_url]
    if not with_dependencies:
        command.append("--no-deps")
    command += ["-c", str(CONSTRAINTS), *requirements]
    environment = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300, check=False)
    return result, report


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def pypi() -> None:
    if not reachable("https://pypi.org/simple/pip/"):
        pytest.skip("PyPI is unreachable from this machine: wheel resolution for the Lambda image needs it")


def without_torch(requirements: list[str]) -> list[str]:
    """The Dockerfile installs torch first, from PyTorch's CPU index (PyPI's x86_64 torch is the CUDA build, whose
    dozen nvidia packages only slow the resolution down); its wheels are checked on their own below."""
    return [line for line in requirements if re.split(r"[<>=!~ \[;]", line, maxsplit=1)[0] != "torch"]


@pytest.fixture(scope="module")
def resolutions(pypi: None, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, str]]:
    """Each installing stage resolved for each architecture, concurrently (pip waits on the network)."""
    stages = dockerfile_stages()
    jobs = {
        (stage.name, architecture): (stage, machine)
        for stage in stages.values()
        if stage.extras
        for architecture, machine in ARCHITECTURES.items()
    }
    tmp = tmp_path_factory.mktemp("resolve")

    def run(job: tuple[Stage, str]) -> dict[str, str]:
        stage, machine = job
        image = BASE_IMAGES[image_of(stage, stages)]
        requirements = stage_requirements(ROOT / "pyproject.toml", list(stage.extras))
        return resolve(without_torch(requirements), image, machine, tmp / f"{stage.name}-{machine}")

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return dict(zip(jobs, pool.map(run, jobs.values()), strict=True))


def test_every_stage_builds_on_a_known_amazon_linux_2023_base_image() -> None:
    stages = dockerfile_stages()
    assert {"deps", "wheel", "model", "runtime-torch", "runtime-fp32", "runtime"} <= stages.keys()
    for stage in stages.values():
        image = image_of(stage, stages)
        assert image in BASE_IMAGES, f"stage {stage.name}: add {image}'s Python and glibc to BASE_IMAGES"
        assert BASE_IMAGES[image].glibc >= (2, 28), f"stage {stage.name}: {image} is Amazon Linux 2 (glibc 2.26)"


def test_the_runtime_stages_install_our_extras() -> None:
    stages = dockerfile_stages()
    assert stages["runtime"].extras == ("lambda",)
    assert "export" in stages["deps"].extras and "aws" in stages["deps"].extras
    assert image_of(stages["runtime-torch"], stages) == image_of(stages["deps"], stages)


def test_every_stage_resolves_for_its_base_image(resolutions: dict[tuple[str, str], dict[str, str]]) -> None:
    for (stage, architecture), wheels in resolutions.items():
        for package in ("onnxruntime", "pillow", "pillow-heif", "numpy", "boto3"):
            assert package in wheels, f"{stage} on {architecture} would not install {package}"
        machine = ARCHITECTURES[architecture]
        for wheel in wheels.values():
            assert wheel.endswith(("-any.whl", f"_{machine}.whl")), f"{stage} on {architecture}: {wheel}"


def test_the_slim_stage_resolves_without_torch_or_transformers(
    resolutions: dict[tuple[str, str], dict[str, str]],
) -> None:
    for architecture in ARCHITECTURES:
        wheels = resolutions[("runtime", architecture)]
        assert not {"torch", "transformers", "safetensors"} & wheels.keys(), sorted(wheels)
        assert "transformers" in resolutions[("deps", architecture)]


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_the_pinned_torch_has_a_wheel_for_the_image(architecture: str, pypi: None, tmp_path: Path) -> None:
    """PyPI's and the CPU index's torch wheels carry the same manylinux tag; this checks it for the pinned version."""
    stages = dockerfile_stages()
    assert "torch" in " ".join(stage_requirements(ROOT / "pyproject.toml", list(stages["deps"].extras)))
    image = BASE_IMAGES[image_of(stages["deps"], stages)]
    wheels = resolve(["torch"], image, ARCHITECTURES[architecture], tmp_path, with_dependencies=False)
    assert wheels["torch"].startswith("torch-2.13.0-"), wheels["torch"]


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_torch_resolves_from_the_cpu_index(architecture: str, tmp_path: Path) -> None:
    """The deps stage takes torch from PyTorch's CPU index (PyPI's x86_64 torch is the CUDA build)."""
    if not reachable(f"{TORCH_CPU_INDEX}/torch/"):
        pytest.skip(f"{TORCH_CPU_INDEX} is unreachable from this machine: the CPU torch wheel cannot be resolved")
    stages = dockerfile_stages()
    image = BASE_IMAGES[image_of(stages["deps"], stages)]
    wheels = resolve(["torch"], image, ARCHITECTURES[architecture], tmp_path, index_url=TORCH_CPU_INDEX)
    assert wheels["torch"].startswith("torch-2.13.0"), wheels["torch"]
    assert not any(name.startswith("nvidia") for name in wheels), sorted(wheels)
