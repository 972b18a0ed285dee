"""Versioned data that defines excap: the episode schema, machine profiles and CAN databases."""

from pathlib import Path

if __name__ != "excap.schemas":
    raise ImportError(f"the schemas are imported as 'excap.schemas', not as {__name__!r}")

SCHEMAS_DIR = Path(__file__).resolve().parent


def schema_file(relative: str) -> Path:
    """Path of a file shipped in `schemas/`, e.g. `schema_file("can/excavator_j1939.dbc")`."""
    return SCHEMAS_DIR / relative


__all__ = ["SCHEMAS_DIR", "schema_file"]
