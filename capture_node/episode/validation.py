"""Checks an episode file against the episode schema: one clear line per problem, never an exception.

The structure (groups, links, dtypes, shapes, lengths, interpreted attributes) is checked by
`excap.episode.structure`, the same check `EpisodeReader` applies when it opens a file, so every file a
reader refuses is reported here. Then every dataset is read in blocks (so damaged storage is found too) and the
values are checked: data streams' t_ns never decrease, every camera frame is a JPEG of a sane size, raw CAN rows
are valid frames, event details are JSON objects.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from excap.episode.annotations import recover_annotation
from excap.episode.can_frames import invalid_rows
from excap.episode.jpeg_frames import MAX_PIXELS, MAX_SIDE, jpeg_size
from excap.episode.structure import ATTRIBUTE_TYPES, check_structure, one_line

BLOCK_ROWS = 4096
FRAME_BLOCK_ROWS = 64
BAD_ROWS_SHOWN = 3


def _dtype_ok(dataset: h5py.Dataset, expected: str) -> bool:
    if expected == "vlen_uint8":
        base = h5py.check_vlen_dtype(dataset.dtype)
        return base is not None and np.dtype(base) == np.uint8
    if expected == "str":
        return h5py.check_string_dtype(dataset.dtype) is not None
    return bool(dataset.dtype == np.dtype(expected))


def _blocks(dataset: h5py.Dataset, rows: int) -> Iterator[tuple[int, Any]]:
    for begin in range(0, dataset.shape[0], rows):
        if h5py.check_string_dtype(dataset.dtype) is not None:
            yield begin, dataset.asstr(errors="replace")[begin:begin + rows]
        else:
            yield begin, dataset[begin:begin + rows]


def _rows(label: str, rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:BAD_ROWS_SHOWN])
    return f"{label} {shown}" + (f" and {len(rows) - BAD_ROWS_SHOWN} more" if len(rows) > BAD_ROWS_SHOWN else "")


def _frame_problem(frame: np.ndarray) -> str | None:
    size = jpeg_size(np.asarray(frame, dtype=np.uint8).tobytes())
    if size is None:
        return "not a JPEG image"
    width, height = size
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE) or width * height > MAX_PIXELS:
        return f"declares {width}x{height} pixels"
    return None


def _check_values(group: h5py.Group, path: str) -> list[str]:
    """Read every attribute and dataset of a structurally sound stream and check the values."""
    problems = []
    for name in group.attrs:
        try:
            group.attrs[name]
        except Exception as exc:  # not UTF-8, damaged, a datatype h5py cannot read
            problems.append(f"/{path}: attribute {name!r} cannot be read ({one_line(exc)})")
    for name in sorted(group):
        dataset = group[name]
        if not isinstance(dataset, h5py.Dataset) or dataset.ndim == 0:
            continue
        where = f"/{path}/{name}"
        if name == "frames":
            bad: dict[str, list[int]] = {}
            for begin, frames in _blocks(dataset, FRAME_BLOCK_ROWS):
                for offset, frame in enumerate(frames):
                    reason = _frame_problem(frame)
                    if reason:
                        bad.setdefault(reason, []).append(begin + offset)
            problems += [f"{where}[{rows[0]}]: {reason}" + (f" ({_rows('also rows', rows[1:])})" if rows[1:] else "")
                         for reason, rows in bad.items()]
        elif name == "t_ns" and path != "events":
            backwards, previous = 0, None
            for _, block in _blocks(dataset, BLOCK_ROWS):
                values = np.asarray(block, dtype=np.int64)
                if previous is not None and values.size and values[0] < previous:
                    backwards += 1
                backwards += int(np.count_nonzero(values[1:] < values[:-1]))
                previous = values[-1] if values.size else previous
            if backwards:
                problems.append(f"{where}: goes backwards {backwards} times")
        elif name == "detail" and path == "events":
            bad_rows = [begin + k for begin, block in _blocks(dataset, BLOCK_ROWS)
                        for k, text in enumerate(block) if not _json_object(str(text))]
            if bad_rows:
                problems.append(f"{where}: {_rows('not a JSON object in rows', bad_rows)}")
        else:
            for _ in _blocks(dataset, BLOCK_ROWS):
                pass  # read to prove the storage is intact
    if path.startswith("can/") and path.count("/") == 1 and {"id", "extended", "dlc"} <= set(group):
        fd = isinstance(group.attrs.get("fd"), bool | np.bool_) and bool(group.attrs["fd"])
        bad_rows = invalid_rows(group["id"][()], group["extended"][()], group["dlc"][()], fd).tolist()
        if bad_rows:
            problems.append(f"/{path}: {_rows('invalid CAN frames (id or DLC out of range) in rows', bad_rows)}")
    return problems


def _json_object(text: str) -> bool:
    import json

    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def _check_group(group: h5py.Group, name: str, rule: dict[str, Any]) -> list[str]:
    """A non-stream group (e.g. /annotations): attributes, datasets, equal lengths, enums."""
    problems = []
    for attr, spec in rule.get("attrs", {}).items():
        if attr not in group.attrs:
            if spec.get("required"):
                problems.append(f"/{name}: attribute {attr!r} is missing")
            continue
        value = group.attrs[attr]
        value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        is_bool = isinstance(value, bool | np.bool_)
        if not isinstance(value, ATTRIBUTE_TYPES[spec["type"]]) or is_bool != (spec["type"] == "bool"):
            problems.append(f"/{name}: attribute {attr!r} should be {spec['type']}, is {type(value).__name__}")
        elif "enum" in spec and value not in spec["enum"]:
            problems.append(f"/{name}: attribute {attr!r} is {value!r}, not one of {', '.join(spec['enum'])}")
    datasets = rule.get("datasets", {})
    for item in group:
        if item not in datasets:
            problems.append(f"/{name}/{item}: not defined by the schema")
    lengths = set()
    for item, spec in datasets.items():
        dataset = group.get(item)
        if not isinstance(dataset, h5py.Dataset):
            problems.append(f"/{name}/{item}: dataset is missing")
            continue
        if not _dtype_ok(dataset, spec["dtype"]) or dataset.ndim != spec["ndim"]:
            problems.append(f"/{name}/{item}: should be {spec['dtype']} with {spec['ndim']} dimension(s)")
            continue
        lengths.add(dataset.shape[0])
        if "enum" in spec and dataset.shape[0]:
            bad = sorted(set(dataset.asstr()[()]) - set(spec["enum"]))
            if bad:
                problems.append(f"/{name}/{item}: {', '.join(map(repr, bad))} not one of {', '.join(spec['enum'])}")
    if len(lengths) > 1:
        problems.append(f"/{name}: datasets differ in length")
    elif not problems and "t_start_ns" in datasets and "t_end_ns" in datasets:
        start, end = group["t_start_ns"][()], group["t_end_ns"][()]
        if np.any(end <= start):
            problems.append(f"/{name}: a span ends before it starts")
    return problems


def _problems(handle: h5py.File, size: int) -> list[str]:
    structure = check_structure(handle, size)
    if not structure.schema:  # not an episode, or of an unknown version: nothing else to check
        return structure.problems
    problems = structure.problems + structure.deviations
    broken = {p.split(":")[0].lstrip("/") for p in structure.problems}
    for stream in structure.streams:
        if any(b == stream or b.startswith(f"{stream}/") for b in broken):
            continue  # its structure is already reported; its values cannot be checked safely
        try:
            problems += _check_values(handle[stream], stream)
        except Exception as exc:  # damaged chunks or heaps
            problems.append(f"/{stream}: data cannot be read ({one_line(exc)})")
    for name, rule in structure.schema.get("groups", {}).items():
        item = handle.get(name)
        if isinstance(item, h5py.Group):
            try:
                problems += _check_group(item, name, rule)
            except Exception as exc:  # damaged group storage
                problems.append(f"/{name}: cannot be read ({one_line(exc)})")
    return problems


def annotation_problems(handle: h5py.File) -> list[str]:
    """Problems of an open episode's /annotations group, as `excap validate` reports them (none without one)."""
    from excap.episode.schema import load_episode_schema

    rule = load_episode_schema(1).get("groups", {}).get("annotations")
    item = handle.get("annotations")
    if rule is None or item is None:
        return []
    if not isinstance(item, h5py.Group):
        return ["/annotations should be a group"]
    try:
        return _check_group(item, "annotations", rule)
    except Exception as exc:  # damaged annotation storage
        return [f"/annotations: cannot be read ({one_line(exc)})"]


def validate_episode(path: Path) -> list[str]:
    """Problems found in one file; an empty list means the episode is valid. Never raises for a bad file.

    A leftover annotation sidecar (an interrupted `excap annotate`) is applied first, see annotation_store."""
    path = Path(path)
    if not path.exists():
        return [f"{path}: no such file"]
    if not path.is_file():
        return [f"{path}: not a file"]
    try:
        if not h5py.is_hdf5(path):
            return [f"{path}: not an HDF5 file"]
        size = path.stat().st_size
    except OSError as exc:
        return [f"{path}: cannot be read ({one_line(exc)})"]
    try:
        recover_annotation(path)
    except Exception as exc:  # the sidecar or the file it is applied to is damaged
        return [f"{path}: leftover annotation sidecar could not be applied ({one_line(exc)})"]
    try:
        handle = h5py.File(path, "r")
    except Exception as exc:  # truncated or damaged superblock
        return [f"{path}: HDF5 file cannot be opened ({one_line(exc)})"]
    with handle:
        try:
            problems = _problems(handle, size)
        except Exception as exc:  # anything the damaged file makes h5py raise
            problems = [f"the file cannot be read ({one_line(exc)})"]
    return [f"{path}: {p}" for p in dict.fromkeys(problems)]
