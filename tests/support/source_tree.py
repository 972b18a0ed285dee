"""Import excap from a copy of the repository instead of the installed one.

Mutation testing (mutmut) copies the repository into `mutants/` and runs the tests there; the installed
`excap` points at the original folders, so without this hook the tests would never see a mutant. When the
environment names a copy (`EXCAP_SOURCE_TREE`, or mutmut's `MUTANT_UNDER_TEST` with the current folder), the
`excap`, `excap.drivers` and `excap.schemas` packages are taken from that copy's folders.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

FOLDERS = {"excap": "capture_node", "excap.drivers": "drivers", "excap.schemas": "schemas"}


class SourceTreeFinder(importlib.abc.MetaPathFinder):
    """Finds the three top packages of the namespace in `root`; their subpackages follow through `__path__`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        folder = FOLDERS.get(fullname)
        if folder is None:
            return None
        init = self.root / folder / "__init__.py"
        return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[str(init.parent)])


def source_tree_from_environment() -> Path | None:
    if os.environ.get("EXCAP_SOURCE_TREE"):
        return Path(os.environ["EXCAP_SOURCE_TREE"]).resolve()
    if "MUTANT_UNDER_TEST" in os.environ and (Path.cwd() / "capture_node" / "__init__.py").is_file():
        return Path.cwd()
    return None


def use_source_tree(root: Path) -> None:
    """Import excap from `root` (before anything imported it)."""
    if "excap" in sys.modules:
        raise RuntimeError("excap was imported before the source tree hook was installed")
    sys.meta_path.insert(0, SourceTreeFinder(root))
