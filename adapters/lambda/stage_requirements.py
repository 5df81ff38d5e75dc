"""The requirements of some of our extras, read from pyproject.toml: what a Lambda image stage installs.

The Dockerfile installs a stage's dependencies in their own layer, before the code is copied, so a code change does
not reinstall them. pip cannot install "the dependencies of this project's extras" without the project, so this
expands the extras (following ``imgcaption-toolkit[...]`` self-references) into plain requirement lines:

    python stage_requirements.py pyproject.toml lambda > requirements.txt
    pip install -c constraints.txt -r requirements.txt

The image and the package therefore cannot drift apart, and the platform-resolution test
(``tests/unit/test_lambda_image_platforms.py``) resolves exactly these lines for the image's platform.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_SELF_REFERENCE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)\[(?P<extras>[^\]]+)\]\s*$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def stage_requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The core dependencies plus those of ``extras``, self-references expanded, duplicates dropped, order kept."""
    project = tomllib.loads(pyproject.read_text())["project"]
    name = _canonical(project["name"])
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    requirements: list[str] = []
    seen_extras: set[str] = set()

    def add(requirement: str) -> None:
        reference = _SELF_REFERENCE.match(requirement)
        if reference and _canonical(reference["name"]) == name:
            for extra in reference["extras"].split(","):
                expand(extra.strip())
        elif requirement not in requirements:
            requirements.append(requirement)

    def expand(extra: str) -> None:
        if extra in seen_extras:
            return
        if extra not in optional:
            raise SystemExit(f"{pyproject} has no extra {extra!r} (it has: {', '.join(sorted(optional))})")
        seen_extras.add(extra)
        for requirement in optional[extra]:
            add(requirement)

    for requirement in project.get("dependencies", []):
        add(requirement)
    for extra in extras:
        expand(extra)
    return requirements


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python stage_requirements.py PYPROJECT EXTRA[,EXTRA...]")
    extras = [extra for argument in argv[1:] for extra in argument.split(",") if extra]
    print("\n".join(stage_requirements(Path(argv[0]), extras)))


if __name__ == "__main__":
    main(sys.argv[1:])
