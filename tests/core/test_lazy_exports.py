"""Curated package APIs: every package names its public API in `__all__`, imports it on first use, and importing a
package (or a module in it) loads nothing else of excap and no heavy third-party library."""

import ast
import importlib
import json
import pkgutil
import subprocess
import sys

import pytest

from excap.core.lazy_exports import lazy_exports
from tests.support.paths import REPO

PACKAGES = ("core", "episode", "record", "catalogue", "datasets", "delivery", "people", "review", "replay",
            "convert", "web")
HEAVY = ("pandas", "pyarrow", "av", "asammdf", "boto3", "torch", "h5py", "numpy", "cv2", "fastapi", "uvicorn", "can")

LOADED_BY_IMPORT = """
import json, sys
before = set(sys.modules)
import excap.{package}
print(json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_a_package_loads_nothing_else(package: str) -> None:
    done = subprocess.run([sys.executable, "-c", LOADED_BY_IMPORT.format(package=package)], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert not {name.split(".")[0] for name in loaded} & set(HEAVY), sorted(loaded)
    assert {name for name in loaded if name.startswith("excap")} <= {
        "excap", "excap.core", "excap.core.lazy_exports", f"excap.{package}"}, sorted(loaded)


def _type_checking_imports(package: str) -> dict[str, list[str]]:
    """module -> names imported under `if TYPE_CHECKING:` in the package's __init__.py."""
    tree = ast.parse((REPO / "capture_node" / package / "__init__.py").read_text(encoding="utf-8"))
    blocks = [node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"]
    assert len(blocks) == 1, f"excap.{package}: one `if TYPE_CHECKING:` block of imports"
    return {node.module: [alias.name for alias in node.names] for node in blocks[0].body
            if isinstance(node, ast.ImportFrom) and node.module}


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_resolve_to_their_modules_and_type_checkers_see_the_same_list(package: str) -> None:
    module = importlib.import_module(f"excap.{package}")
    assert module.__doc__ and len(module.__doc__.split()) > 15, f"excap.{package} says what it is for"
    submodules = {info.name for info in pkgutil.iter_modules(module.__path__)}
    assert not set(module.__all__) & submodules, "importing that submodule would replace the public name"
    declared = _type_checking_imports(package)
    assert sorted(n for names in declared.values() for n in names) == sorted(module.__all__)
    for home, names in declared.items():
        for name in names:
            value = getattr(module, name)
            assert value is getattr(importlib.import_module(home), name)
            if isinstance(value, type) or callable(value):
                assert value.__module__ == home, f"{name} is defined in {value.__module__}, listed under {home}"
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match=f"'excap.{package}' has no attribute 'no_such_name'"):
        module.no_such_name  # noqa: B018


def test_a_map_that_differs_from_all_is_refused() -> None:
    with pytest.raises(ValueError, match="differ"):
        lazy_exports("excap.example", ["a", "b"], {"excap.example.one": ["a"]})
    with pytest.raises(ValueError, match="differ"):
        lazy_exports("excap.example", ["a"], {"excap.example.one": ["a"], "excap.example.two": ["a"]})
