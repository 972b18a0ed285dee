"""Package-level public names imported on first use (PEP 562), so that importing a package, or any module inside
it, never imports the rest of the package and its third-party libraries.

A package's `__init__.py` lists its public names once, by module::

    from excap.core.lazy_exports import lazy_exports

    __all__ = ["EpisodeReader", "opened"]

    __getattr__, __dir__ = lazy_exports(__name__, __all__, {
        "excap.episode.reader": ["EpisodeReader", "opened"],
    })

and repeats them under `if TYPE_CHECKING:` as plain imports for type checkers (tests/core/test_lazy_exports.py keeps
the three lists equal; `lazy_exports` itself refuses a map that differs from `__all__`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, public: Sequence[str], exports: Mapping[str, Sequence[str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(`__getattr__`, `__dir__`) for `package` whose `public` names are defined in modules as `exports` lists them
    (module -> names). ValueError if a name is listed twice or the map and `public` differ."""
    home = {name: module for module, names in exports.items() for name in names}
    if len(home) != sum(len(names) for names in exports.values()) or sorted(home) != sorted(public):
        raise ValueError(f"{package}: __all__ and the map of lazy exports differ")

    def __getattr__(name: str) -> Any:
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # found directly from now on
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *home})

    return __getattr__, __dir__
