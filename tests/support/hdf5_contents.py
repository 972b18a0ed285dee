"""HDF5 files compared by content (h5py level): every group and dataset by path, with its attributes, and each
dataset's dtype, shape, values and whether it is virtual. Two HDF5 files with equal content are not byte-equal
(object addresses, timestamps), so exports written in different ways are compared this way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np


def _value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return (str(value.dtype), value.shape, value.tobytes())
    if isinstance(value, bytes | np.bytes_):
        return bytes(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def hdf5_contents(path: Path) -> dict[str, Any]:
    """path inside the file -> (kind, attributes, for datasets: dtype, shape, values, virtual); keys in order."""
    contents: dict[str, Any] = {}

    def visit(name: str, item: h5py.Group | h5py.Dataset) -> None:
        attrs = {key: _value(item.attrs[key]) for key in sorted(item.attrs)}
        if isinstance(item, h5py.Dataset):
            contents[name] = ("dataset", attrs, str(item.dtype), item.shape, _value(item[()]), item.is_virtual)
        else:
            contents[name] = ("group", attrs, list(item))

    with h5py.File(path, "r") as handle:
        contents["/"] = ("group", {key: _value(handle.attrs[key]) for key in sorted(handle.attrs)}, list(handle))
        handle.visititems(visit)
    return contents
