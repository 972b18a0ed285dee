"""python-can without its MF4 support, for the commands that only open buses.

`import can` imports every log format python-can knows, and where asammdf is installed (the `mf4` extra, also in
`all` and `dev`) that is asammdf with pandas, polars and their kin: about 0.45 s and 100 MB more in every process
that opens a CAN bus. The long-running commands (`excap record`, `excap station`, `excap node`) never read or
write an MF4 log, so they call `import_can_without_mf4()` before anything imports `can`: python-can then loads as
it does without the extra (its MF4 reader and writer unusable in that process; `excap can import` and
`excap can export`, other commands, keep them). Nothing changes where `can` is already imported.
"""

import sys


def import_can_without_mf4() -> bool:
    """Import `can` with asammdf out of its reach; False if `can` was already imported (then nothing changes)."""
    if "can" in sys.modules:
        return False
    hidden = "asammdf" not in sys.modules
    if hidden:
        sys.modules["asammdf"] = None  # type: ignore[assignment]  # an import of it raises ImportError
    try:
        import can  # noqa: F401
    finally:
        if hidden and sys.modules.get("asammdf", False) is None:
            del sys.modules["asammdf"]  # asammdf itself stays importable
    return True
