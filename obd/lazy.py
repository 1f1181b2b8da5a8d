"""Lazy package exports (PEP 562), so importing a package's command-line shell does not import torch."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` / ``__dir__`` for ``package`` resolving ``name`` from ``exports[name]`` (a module path,
    or ``module:attr[.attr]`` when the public name differs) on first access."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = exports[name].partition(":")
        value: Any = importlib.import_module(module)
        for part in (attr or name).split("."):
            value = getattr(value, part)
        globals_of_package = importlib.import_module(package).__dict__
        globals_of_package[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
