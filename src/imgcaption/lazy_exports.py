"""Names a package re-exports without importing their modules until first use, so ``import imgcaption`` stays fast.

A package calls :func:`lazy_exports` with ``{name: module}`` and assigns the two functions it returns to its
``__getattr__`` and ``__dir__`` (PEP 562), so ``dir(package)`` and tab completion list the lazy names too.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, lazy: Mapping[str, str], eager: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``; ``eager`` are the names it already defines."""
    listed = sorted({*eager, *lazy})

    def __getattr__(name: str) -> Any:
        module_name = lazy.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_name), name)
        setattr(importlib.import_module(package), name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return listed

    return __getattr__, __dir__
