"""The scripts of bench/ as modules, so tests run their measurements at a reduced scale."""

import importlib.util
from types import ModuleType

from tests.support.paths import REPO


def bench_script(name: str) -> ModuleType:
    """bench/NAME.py loaded as a module (its `main` is not run)."""
    path = REPO / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
