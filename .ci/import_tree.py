"""Lay the source folders out as the installed `excap` package, as a tree of symbolic links to the sources.

setup.py maps `capture_node/` to `excap`, `drivers/` to `excap.drivers` and `schemas/` to `excap.schemas`. An
editable install resolves that mapping with an import hook, which the static checkers do not run: mypy and
import-linter look for `excap` as a folder. This script makes that folder, `build/import-tree/excap`, from
setup.py's `SOURCES` (every file a link to the real one, so mypy's messages name files you can open), and
both checkers are pointed at it (pyproject.toml: mypy's `mypy_path`; `PYTHONPATH` for `lint-imports`).

Usage: python .ci/import_tree.py   (prints the tree's folder; rerun after adding or removing a module)
"""

import ast
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREE = REPO / "build" / "import-tree"


def sources() -> dict[str, str]:
    """setup.py's SOURCES: import package -> repository folder."""
    module = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    for node in module.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "SOURCES" for t in node.targets):
            value = ast.literal_eval(node.value)
            if isinstance(value, dict):
                return {str(package): str(folder) for package, folder in value.items()}
    raise SystemExit("import_tree: error: setup.py has no SOURCES mapping")


def link_package(package: str, folder: Path, tree: Path, nested: set[str]) -> None:
    """Link every file under `folder` into the tree at the package's path, skipping packages mapped elsewhere."""
    target_root = tree.joinpath(*package.split("."))
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if "__pycache__" in rel.parts or not path.is_file():
            continue
        if any(".".join((package, *rel.parts[:depth])) in nested for depth in range(1, len(rel.parts))):
            continue
        target = target_root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path)


def main() -> int:
    mapping = sources()
    if TREE.exists():
        shutil.rmtree(TREE)
    for package, folder in mapping.items():
        nested = {other for other in mapping if other.startswith(package + ".")}
        link_package(package, REPO / folder, TREE, nested)
    print(TREE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
