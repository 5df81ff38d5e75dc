"""The name imgcaption is installed under, its version, and how to ask for an optional part of it.

The import package and the command are ``imgcaption``; the distribution on PyPI is ``imgcaption-toolkit``, because
an unrelated ``imgcaption`` (a 2016 web-service client with the same top-level package) already holds that name.
Every "install this extra" message is built here, so none of them can name the wrong distribution.
"""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "imgcaption-toolkit"


def installed_version() -> str:
    """The version pip installed (pyproject.toml is its one source); ``0+unknown`` when run from a bare checkout."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def install_hint(*extras: str) -> str:
    """The pip command that adds ``extras``, e.g. ``pip install 'imgcaption-toolkit[onnx]'``."""
    return f"pip install '{DISTRIBUTION}[{','.join(extras)}]'"
