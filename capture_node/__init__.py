"""excap: teleoperation demonstration capture for excavators and wheel loaders.

The repository keeps its folders `capture_node/`, `drivers/` and `schemas/`; they install as one import package,
`excap` (with `excap.drivers` and `excap.schemas`), so that no other distribution's top-level names can collide with
ours. Importing a folder under its own name would make a second copy of every module: it is refused.
"""

if __name__ != "excap":
    raise ImportError(f"excap's code is imported as 'excap', not as {__name__!r}: install the project "
                      "(pip install -e .) and import excap")

__version__ = "0.2.0"

__all__ = ["__version__"]
