"""Stream layouts: which columns a stream has, and how rows become column arrays.

A stream is one HDF5 group of equally long datasets, `t_ns` first. Its spec travels in the
journal, so a crashed recording can be rebuilt without the code that produced it.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Column kinds: fixed numpy dtypes, plus variable-length bytes (JPEG frames) and UTF-8 text.
FIXED_DTYPES = ("int64", "uint64", "int32", "uint32", "uint16", "uint8", "bool", "float32", "float64")
VLEN_KINDS = ("bytes", "str")


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    shape: tuple[int, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dtype not in FIXED_DTYPES + VLEN_KINDS:
            raise ValueError(f"column {self.name!r}: unknown dtype {self.dtype!r}")
        if self.dtype in VLEN_KINDS and self.shape:
            raise ValueError(f"column {self.name!r}: variable-length columns are one value per row")

    @property
    def is_vlen(self) -> bool:
        return self.dtype in VLEN_KINDS

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "attrs": self.attrs}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Column":
        return cls(data["name"], data["dtype"], tuple(data.get("shape", ())), dict(data.get("attrs", {})))


@dataclass(frozen=True)
class StreamSpec:
    """A stream: its HDF5 path (e.g. `can/can0`), its columns and its group attributes."""

    path: str
    columns: tuple[Column, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    queue_capacity: int = 4096

    def __post_init__(self) -> None:
        if not self.columns or self.columns[0].name != "t_ns" or self.columns[0].dtype != "int64":
            raise ValueError(f"stream {self.path!r}: first column must be int64 t_ns")
        if self.path.startswith("/") or self.path.endswith("/"):
            raise ValueError(f"stream path {self.path!r} must be relative, like 'can/can0'")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "columns": [c.to_json() for c in self.columns],
            "attrs": self.attrs,
            "queue_capacity": self.queue_capacity,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StreamSpec":
        return cls(
            path=data["path"],
            columns=tuple(Column.from_json(c) for c in data["columns"]),
            attrs=dict(data.get("attrs", {})),
            queue_capacity=int(data.get("queue_capacity", 4096)),
        )


Batch = dict[str, Any]
"""Column name -> numpy array (fixed columns) or list of bytes/str (variable-length columns)."""


def rows_to_batch(spec: StreamSpec, rows: Sequence[Sequence[Any]]) -> Batch:
    """Turn row tuples (in column order) into one array or list per column."""
    batch: Batch = {}
    for index, column in enumerate(spec.columns):
        values = [row[index] for row in rows]
        if column.is_vlen:
            batch[column.name] = values
        else:
            batch[column.name] = np.asarray(values, dtype=column.dtype).reshape((len(rows), *column.shape))
    return batch


def concat_batches(spec: StreamSpec, batches: Sequence[Batch]) -> Batch:
    """Join batches of one stream, column by column."""
    if len(batches) == 1:
        return batches[0]
    out: Batch = {}
    for column in spec.columns:
        parts = [b[column.name] for b in batches]
        if column.is_vlen:
            out[column.name] = [v for part in parts for v in part]
        else:
            out[column.name] = np.concatenate(parts, axis=0)
    return out


def batch_length(batch: Batch) -> int:
    return len(batch["t_ns"])


def batch_bytes(batch: Batch) -> int:
    """The bytes of a batch's values (what writing it adds to a file, before any overhead)."""
    total = 0
    for values in batch.values():
        total += sum(len(v) for v in values) if isinstance(values, list) else values.nbytes
    return total


# Standard streams of an episode -----------------------------------------------------------


def control_spec(function_names: Sequence[str], units: str = "normalized [-1, 1]") -> StreamSpec:
    return StreamSpec(
        "control",
        (
            Column("t_ns", "int64"),
            Column("commands", "float32", (len(function_names),), {"names": list(function_names),
                                                                  "units": units}),
            Column("enabled", "bool"),
        ),
        attrs={"description": "machine-function commands sent to the machine"},
        queue_capacity=4096,
    )


def joystick_spec(device: str, axis_names: Sequence[str], button_names: Sequence[str],
                  backend: str, device_name: str) -> StreamSpec:
    return StreamSpec(
        f"joystick/{device}",
        (
            Column("t_ns", "int64"),
            Column("t_device_ns", "int64"),
            Column("axes", "float32", (len(axis_names),), {"names": list(axis_names)}),
            Column("buttons", "uint8", (len(button_names),), {"names": list(button_names)}),
        ),
        attrs={"backend": backend, "device_name": device_name},
        queue_capacity=4096,
    )


CAN_CLASSIC_BYTES = 8
CAN_FD_BYTES = 64


def can_spec(channel: str, interface: str, fd: bool = False, dbc: str = "") -> StreamSpec:
    width = CAN_FD_BYTES if fd else CAN_CLASSIC_BYTES
    return StreamSpec(
        f"can/{channel}",
        (
            Column("t_ns", "int64"),
            Column("t_device_ns", "int64"),
            Column("id", "uint32"),
            Column("extended", "bool"),
            Column("dlc", "uint8"),
            Column("data", "uint8", (width,)),
        ),
        attrs={"interface": interface, "fd": fd, "dbc": dbc},
        queue_capacity=16384,
    )


def can_decoded_spec(channel: str, message: str, frame_id: int, signals: Sequence[tuple[str, str]]) -> StreamSpec:
    """Decoded J1939 message: one float64 dataset per signal, NaN where the value is missing."""
    columns = [Column("t_ns", "int64"), Column("source_address", "uint8")]
    columns += [Column(name, "float64", (), {"unit": unit}) for name, unit in signals]
    return StreamSpec(
        f"can/{channel}/decoded/{message}",
        tuple(columns),
        attrs={"frame_id": frame_id},
        queue_capacity=8192,
    )


def camera_spec(name: str, width: int, height: int, nominal_fps: float, source: str) -> StreamSpec:
    return StreamSpec(
        f"cameras/{name}",
        (
            Column("t_ns", "int64"),
            Column("t_device_ns", "int64"),
            Column("frames", "bytes"),
        ),
        attrs={"width": width, "height": height, "encoding": "jpeg", "nominal_fps": nominal_fps,
               "source": source},
        queue_capacity=90,
    )


def events_spec() -> StreamSpec:
    return StreamSpec(
        "events",
        (Column("t_ns", "int64"), Column("kind", "str"), Column("detail", "str")),
        attrs={"description": "start, stop, marker, fault, drop, reconnect, ... with JSON detail"},
        queue_capacity=4096,
    )
