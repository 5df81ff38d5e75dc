"""Optional dependencies of the AWS adapters, imported lazily with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from imgcaption.distribution import install_hint
from imgcaption.errors import ConfigurationError

INSTALL_HINT = install_hint("aws")


class MissingDependencyError(ConfigurationError, ImportError):
    """An AWS feature was used without its libraries. Both an ``ImportError`` and an imgcaption error."""


def require(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the ``[aws]`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"the AWS adapters need {module.split('.')[0]!r}, which is not installed: {INSTALL_HINT}"
        ) from exc
