"""A corpus of hostile episode files made from one real recording: every way a file can be damaged or forged.

`hostile_corpus(source, folder)` writes a compact copy of a real episode (`compact_copy`: the first second of
every stream, small chunks, the recorder's HDF5 format) and then several hundred files derived from it into
`folder`, each named after what was done to it:

- truncations at many offsets, single bit flips in the file's metadata (everything but raw dataset chunks) and
  a few in raw data;
- root attributes missing or of the wrong type, non-finite, absurd, huge, not UTF-8;
- every dataset of every stream kind missing, of the wrong dtype, rank or length, scalar, empty, replaced by a
  group or a dangling link, declaring an absurd shape;
- timestamps reversed, shuffled, negative, with a huge gap, far in the future, at the int64 limits;
- camera frames that are not JPEG, empty, truncated, of another size, declaring an absurd size; absurd camera
  attributes; a camera that delivered nothing;
- NaN and infinite commands, axes and signals; bad names and units; bad counters;
- missing, extra, junk and linked groups; malformed events and annotations; raw CAN rows out of range;
- files that are not episodes at all (empty, text, random bytes, foreign HDF5).

Every file carries the `.h5` suffix, so folder tools pick them all up. `HostileEpisode.name` says what was done.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

Edit = Callable[[h5py.File], None]

WINDOW_S = 0.6
CHUNK_ROWS = 64
NUMERIC_DATASETS = {  # stream -> columns of the compact copy that hold numbers
    "control": ("t_ns", "commands", "enabled"),
    "cameras/side": ("t_ns", "t_device_ns"),
    "can/can0": ("t_ns", "t_device_ns", "id", "extended", "dlc", "data"),
    "can/can0/decoded/EEC1": ("t_ns", "source_address", "EngSpeed"),
    "joystick/operator": ("t_ns", "t_device_ns", "axes", "buttons"),
    "events": ("t_ns",),
}
TEXT_DATASETS = {"events": ("kind", "detail")}
TIMED_STREAMS = ("control", "cameras/side", "can/can0", "can/can0/decoded/EEC1", "joystick/operator", "events")
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


@dataclass(frozen=True)
class HostileEpisode:
    name: str  # what was done, e.g. "dataset control/commands: wrong rank 1"
    category: str  # truncation, bitflip-metadata, bitflip-data, root-attribute, dataset, timestamps, frames, ...
    path: Path


# -- the compact base episode ----------------------------------------------------------------------------------


def _copy_attrs(source: h5py.AttributeManager, target: h5py.AttributeManager) -> None:
    for key, value in source.items():
        target[key] = value


def _window_rows(group: h5py.Group, cutoff: int) -> int:
    t_ns = group["t_ns"][()]
    return int(np.searchsorted(t_ns, cutoff, side="right")) if group.name != "/events" else len(t_ns)


def _copy_dataset(dataset: h5py.Dataset, target: h5py.Group, name: str, rows: int) -> None:
    data = dataset[:rows] if dataset.ndim else dataset[()]
    if dataset.ndim == 0:
        copy = target.create_dataset(name, data=data, dtype=dataset.dtype)
    else:
        chunks = (CHUNK_ROWS, *dataset.shape[1:])
        copy = target.create_dataset(name, shape=(rows, *dataset.shape[1:]), maxshape=(None, *dataset.shape[1:]),
                                     chunks=chunks, dtype=dataset.dtype)
        if rows:
            copy[:rows] = data
    _copy_attrs(dataset.attrs, copy.attrs)


def compact_copy(source: Path, out: Path, window_s: float = WINDOW_S) -> Path:
    """The first `window_s` seconds of every stream of `source` (all events), in small chunks, as `out`."""
    with h5py.File(source, "r") as original, h5py.File(out, "w", libver=("v110", "latest")) as copy:
        _copy_attrs(original.attrs, copy.attrs)
        start = int(original.attrs["start_t_ns"])
        cutoff = start + round(window_s * 1e9)

        def visit(name: str, item: h5py.HLObject) -> None:
            if isinstance(item, h5py.Group):
                group = copy.require_group(name)
                _copy_attrs(item.attrs, group.attrs)
                if isinstance(item.get("t_ns"), h5py.Dataset):
                    rows = _window_rows(item, cutoff)
                    for key, dataset in item.items():
                        if isinstance(dataset, h5py.Dataset):
                            _copy_dataset(dataset, group, key, rows)

        original.visititems(visit)
        last = max(int(g["t_ns"][-1]) for g in _streams(copy) if len(g["t_ns"]) and g.name != "/events")
        copy.attrs["end_t_ns"] = np.int64(last)
        copy.attrs["duration_s"] = np.float64((last - start) / 1e9)
    return out


def _streams(handle: h5py.File) -> list[h5py.Group]:
    found: list[h5py.Group] = []
    handle.visititems(lambda _, item: found.append(item) if isinstance(item, h5py.Group)
                      and isinstance(item.get("t_ns"), h5py.Dataset) else None)
    return found


def raw_data_ranges(path: Path) -> list[tuple[int, int]]:
    """Byte ranges [start, end) of the raw chunks of every fixed-size dataset (the rest is metadata or heaps)."""
    ranges: list[tuple[int, int]] = []
    with h5py.File(path, "r") as handle:
        def visit(_: str, item: h5py.HLObject) -> None:
            if not isinstance(item, h5py.Dataset) or item.dtype.kind == "O" or item.shape == ():
                return
            dsid = item.id
            if item.chunks is None:
                offset = dsid.get_offset()
                if offset is not None:
                    ranges.append((offset, offset + dsid.get_storage_size()))
                return
            for index in range(dsid.get_num_chunks()):
                info = dsid.get_chunk_info(index)
                ranges.append((info.byte_offset, info.byte_offset + info.size))

        handle.visititems(visit)
    return sorted(ranges)


def metadata_offsets(path: Path) -> list[int]:
    """Every byte offset of `path` outside raw dataset chunks."""
    size = path.stat().st_size
    inside = np.zeros(size, dtype=bool)
    for start, end in raw_data_ranges(path):
        inside[start:min(end, size)] = True
    return np.flatnonzero(~inside).tolist()


def flip_bit(data: bytes, offset: int, bit: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 1 << bit
    return bytes(changed)


# -- edits ------------------------------------------------------------------------------------------------------


def _replace(group: h5py.Group, name: str, data: Any, dtype: Any = None, attrs: dict[str, Any] | None = None) -> None:
    old_attrs = dict(group[name].attrs) if name in group and isinstance(group[name], h5py.Dataset) else {}
    if name in group:
        del group[name]
    dataset = group.create_dataset(name, data=data, dtype=dtype)
    for key, value in (old_attrs if attrs is None else attrs).items():
        dataset.attrs[key] = value


def _set_attr(path: str, key: str, value: Any) -> Edit:
    def edit(handle: h5py.File) -> None:
        handle[path].attrs[key] = value
    return edit


def _del_attr(path: str, key: str) -> Edit:
    def edit(handle: h5py.File) -> None:
        del handle[path].attrs[key]
    return edit


def _dataset(stream: str, column: str, make: Callable[[np.ndarray], Any], dtype: Any = None) -> Edit:
    def edit(handle: h5py.File) -> None:
        group = handle[stream]
        _replace(group, column, make(group[column][()]), dtype)
    return edit


def _delete(path: str) -> Edit:
    def edit(handle: h5py.File) -> None:
        del handle[path]
    return edit


def _jpeg(width: int, height: int, value: int = 90) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", np.full((height, width, 3), value, np.uint8))
    assert ok
    return data.reshape(-1)


def _png(width: int, height: int) -> np.ndarray:
    ok, data = cv2.imencode(".png", np.full((height, width, 3), 60, np.uint8))
    assert ok
    return data.reshape(-1)


def jpeg_declaring(width: int, height: int) -> np.ndarray:
    """A real small JPEG whose frame header (SOF0) claims another size: decoders would allocate for that size."""
    data = bytearray(_jpeg(16, 16).tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return np.frombuffer(bytes(data), dtype=np.uint8)


def _frames(make: Callable[[list[np.ndarray]], list[np.ndarray]]) -> Edit:
    def edit(handle: h5py.File) -> None:
        group = handle["cameras/side"]
        frames = make([np.asarray(f, dtype=np.uint8) for f in group["frames"][()]])
        del group["frames"]
        dataset = group.create_dataset("frames", (len(frames),), dtype=h5py.vlen_dtype(np.uint8))
        for index, frame in enumerate(frames):
            dataset[index] = frame
    return edit


def _stream_rows(stream: str, rows: Callable[[int], np.ndarray]) -> Edit:
    """Keep the rows `rows(n)` (indices) of every dataset of a stream: e.g. an empty stream, reordered rows."""
    def edit(handle: h5py.File) -> None:
        group = handle[stream]
        count = len(group["t_ns"])
        keep = rows(count)
        for name, dataset in list(group.items()):
            if isinstance(dataset, h5py.Dataset):
                data = dataset[()]
                attrs = dict(dataset.attrs)
                del group[name]
                if dataset.dtype.kind == "O" and h5py.check_vlen_dtype(dataset.dtype) is not None \
                        and h5py.check_string_dtype(dataset.dtype) is None:
                    new = group.create_dataset(name, (len(keep),), dtype=dataset.dtype)
                    for row, index in enumerate(keep):
                        new[row] = data[index]
                else:
                    new = group.create_dataset(name, data=data[keep], dtype=dataset.dtype,
                                               maxshape=(None, *data.shape[1:]), chunks=True)
                for key, value in attrs.items():
                    new.attrs[key] = value
    return edit


def _times(stream: str, change: Callable[[np.ndarray], np.ndarray]) -> Edit:
    return _dataset(stream, "t_ns", lambda t: change(t.astype(np.int64)).astype(np.int64), np.int64)


def _set_values(stream: str, column: str, change: Callable[[np.ndarray], np.ndarray]) -> Edit:
    def edit(handle: h5py.File) -> None:
        dataset = handle[stream][column]
        dataset[...] = change(dataset[()])
    return edit


# -- the cases --------------------------------------------------------------------------------------------------


ROOT_TYPES = {"str": 7, "int": "seven", "float": "seven", "bool": "yes"}


def _root_attribute_cases(schema_root: dict[str, dict[str, Any]]) -> Iterator[tuple[str, Edit]]:
    for name, rule in schema_root.items():
        yield f"root attribute {name}: missing", _del_attr("/", name)
        yield f"root attribute {name}: {rule['type']} written as {type(ROOT_TYPES[rule['type']]).__name__}", \
            _set_attr("/", name, ROOT_TYPES[rule["type"]])
        yield f"root attribute {name}: an array", _set_attr("/", name, np.arange(3))
    specials: list[tuple[str, Any]] = [
        ("start_t_ns", INT64_MIN), ("start_t_ns", INT64_MAX), ("start_t_ns", np.float64("nan")),
        ("start_t_ns", -5), ("end_t_ns", INT64_MAX), ("end_t_ns", 0), ("end_t_ns", np.float64("inf")),
        ("duration_s", np.float64("nan")), ("duration_s", np.float64("inf")), ("duration_s", -1.0),
        ("duration_s", 1e300), ("clock_offset_ns", INT64_MAX), ("clock_offset_ns", INT64_MIN),
        ("schema_version", 2), ("schema_version", "1"), ("schema_version", 1.5), ("schema_version", True),
        ("schema", np.bytes_(b"excap.episode")), ("schema", "EXCAP.EPISODE"), ("episode_id", "../../x"),
        ("episode_id", "x" * 1_000_000), ("episode_id", ""), ("notes", "n" * 5_000_000),
        ("started_at", "not a date"), ("outcome", "won"), ("recovered", "true"), ("machine_kind", "crane"),
        ("operator_id", np.bytes_(b"\xff\xfe\xfa")), ("task", np.array(["a", "b"], dtype=h5py.string_dtype())),
        ("junk", np.arange(1_000_000)),
    ]
    for name, value in specials:
        shown = repr(value) if len(repr(value)) < 40 else f"{type(value).__name__} of {len(value)}"
        yield f"root attribute {name} = {shown}", _set_attr("/", name, value)

    def non_utf8_string(handle: h5py.File) -> None:
        handle.attrs.create("site", np.array(b"caf\xe9", dtype=h5py.string_dtype("utf-8")))
    yield "root attribute site: not UTF-8", non_utf8_string


EVERY_VARIANT = {"t_ns", "commands", "id", "data", "EngSpeed", "axes"}  # other columns get the basic variants
BASIC_VARIANTS = ("missing", "text", "float with NaN", "one more dimension", "one row short", "scalar",
                  "absurd declared shape")


def _dataset_cases() -> Iterator[tuple[str, Edit]]:
    for name, edit in _every_dataset_case():
        column = name.split("/")[-1].split(":")[0]
        variant = name.split(": ", 1)[1]
        if column in EVERY_VARIANT or variant in BASIC_VARIANTS or variant.startswith("int instead"):
            yield name, edit


def _every_dataset_case() -> Iterator[tuple[str, Edit]]:
    for stream, columns in NUMERIC_DATASETS.items():
        for column in columns:
            where = f"{stream}/{column}"
            yield f"dataset {where}: missing", _delete(where)
            yield f"dataset {where}: text", _dataset(stream, column, lambda d: np.array(["x"] * len(d), dtype=object),
                                                     h5py.string_dtype())
            yield f"dataset {where}: float with NaN", _dataset(
                stream, column, lambda d: np.full(d.shape, np.nan), np.float64)
            yield f"dataset {where}: int instead of {column}", _dataset(
                stream, column, lambda d: np.ones(d.shape, dtype=np.int16), np.int16)
            yield f"dataset {where}: one more dimension", _dataset(stream, column, lambda d: d[..., None].repeat(2, -1))
            if column != "t_ns":
                yield f"dataset {where}: one row short", _dataset(stream, column, lambda d: d[:-1])
                yield f"dataset {where}: one row too many", _dataset(stream, column,
                                                                     lambda d: np.concatenate([d, d[:1]]))
            else:
                yield f"dataset {where}: empty, other columns full", _dataset(stream, column, lambda d: d[:0])
            yield f"dataset {where}: scalar", _dataset(stream, column, lambda d: d.reshape(-1)[0] if d.size else 0)
            yield f"dataset {where}: replaced by a group", _replace_with_group(stream, column)
            yield f"dataset {where}: dangling soft link", _link(stream, column, h5py.SoftLink("/nowhere"))
            yield f"dataset {where}: external link", _link(stream, column, h5py.ExternalLink("missing.h5", "/x"))
            yield f"dataset {where}: absurd declared shape", _absurd_shape(stream, column)
            if column in ("commands", "axes", "buttons", "data"):
                yield f"dataset {where}: one dimension", _dataset(stream, column, lambda d: d[:, 0])
                yield f"dataset {where}: zero columns", _dataset(stream, column, lambda d: d[:, :0])
    for column in TEXT_DATASETS["events"]:
        where = f"events/{column}"
        yield f"dataset {where}: missing", _delete(where)
        yield f"dataset {where}: numbers", _dataset("events", column, lambda d: np.arange(len(d)))
        yield f"dataset {where}: one row short", _dataset("events", column, lambda d: d[:-1], h5py.string_dtype())
        yield f"dataset {where}: bytes", _dataset("events", column, lambda d: np.array([bytes(x) for x in d]))
        yield f"dataset {where}: two dimensions", _dataset(
            "events", column, lambda d: np.array([[x, x] for x in d], dtype=object), h5py.string_dtype())
    yield "dataset cameras/side/frames: fixed uint8 2-D", _dataset(
        "cameras/side", "frames", lambda d: np.zeros((len(d), 16), np.uint8))
    yield "dataset cameras/side/frames: text", _dataset(
        "cameras/side", "frames", lambda d: np.array(["jpeg"] * len(d), dtype=object), h5py.string_dtype())
    yield "dataset cameras/side/frames: one row short", _frames(lambda f: f[:-1])
    yield "dataset cameras/side/frames: missing", _delete("cameras/side/frames")
    yield "dataset cameras/side/frames: absurd declared shape", _absurd_shape("cameras/side", "frames")


def _replace_with_group(stream: str, column: str) -> Edit:
    def edit(handle: h5py.File) -> None:
        del handle[stream][column]
        handle[stream].create_group(column)
    return edit


def _link(stream: str, column: str, link: Any) -> Edit:
    def edit(handle: h5py.File) -> None:
        del handle[stream][column]
        handle[stream][column] = link
    return edit


def _absurd_shape(stream: str, column: str) -> Edit:
    """A dataset declaring 10**12 rows (nothing written: HDF5 stores no chunks, readers would allocate)."""
    def edit(handle: h5py.File) -> None:
        group = handle[stream]
        old = group[column]
        shape, dtype, attrs = old.shape, old.dtype, dict(old.attrs)
        del group[column]
        new = group.create_dataset(column, shape=(10**12, *shape[1:]), dtype=dtype, chunks=(64, *shape[1:]),
                                   maxshape=(None, *shape[1:]))
        for key, value in attrs.items():
            new.attrs[key] = value
    return edit


def _whole_stream_absurd(stream: str) -> Edit:
    def edit(handle: h5py.File) -> None:
        for column in list(handle[stream]):
            if isinstance(handle[stream][column], h5py.Dataset):
                _absurd_shape(stream, column)(handle)
    return edit


TIMESTAMP_BASICS = ("reversed", "int64 maximum last", "far future last (2**62)", "all far future", "negative")


def _timestamp_cases() -> Iterator[tuple[str, Edit]]:
    rng = np.random.default_rng(7)
    changes: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "reversed": lambda t: t[::-1].copy(),
        "shuffled": lambda t: rng.permutation(t),
        "all zero": lambda t: np.zeros_like(t),
        "negative": lambda t: t - t.max() - 10**12,
        "int64 minimum first": lambda t: np.concatenate([[INT64_MIN], t[1:]]),
        "int64 maximum last": lambda t: np.concatenate([t[:-1], [INT64_MAX]]),
        "huge gap before the last": lambda t: np.concatenate([t[:-1], [t[-1] + 10**15]]),
        "far future last (2**62)": lambda t: np.concatenate([t[:-1], [2**62]]),
        "all far future": lambda t: t - t[0] + 2**62,
        "one backwards step": lambda t: np.concatenate([t[:2], t[1:2] - 5, t[3:]]) if len(t) > 3 else t[::-1].copy(),
        "duplicated": lambda t: np.full_like(t, t[len(t) // 2]),
    }
    for stream in TIMED_STREAMS:
        for label, change in changes.items():
            if stream in ("control", "cameras/side") or label in TIMESTAMP_BASICS:
                yield f"timestamps {stream}: {label}", _times(stream, change)
    for label, value in (("int64 maximum", INT64_MAX), ("int64 minimum", INT64_MIN), ("negative", -1)):
        yield f"timestamps can/can0/t_device_ns: {label}", _set_values(
            "can/can0", "t_device_ns", lambda d, v=value: np.full_like(d, v))
    for label, value in (("far future", 2**62), ("before the first sample", 0), ("int64 maximum", INT64_MAX)):
        yield f"root attribute end_t_ns: {label}", _set_attr("/", "end_t_ns", np.int64(value))
    yield "root attribute start_t_ns: after every sample", _set_attr("/", "start_t_ns", np.int64(2**62))


def _value_cases() -> Iterator[tuple[str, Edit]]:
    for label, value in (("NaN", np.nan), ("inf", np.inf), ("-inf", -np.inf), ("1e30", 1e30)):
        yield f"values control/commands: {label} everywhere", _set_values(
            "control", "commands", lambda d, v=value: np.full_like(d, v))
        yield f"values control/commands: {label} in half the rows", _set_values(
            "control", "commands", lambda d, v=value: np.where(np.arange(len(d))[:, None] % 2 == 0, v, d))
        yield f"values joystick/operator/axes: {label}", _set_values(
            "joystick/operator", "axes", lambda d, v=value: np.full_like(d, v))
        yield f"values EEC1/EngSpeed: {label}", _set_values(
            "can/can0/decoded/EEC1", "EngSpeed", lambda d, v=value: np.full_like(d, v))
    for stream in ("HydraulicPressures1", "SwingStatus", "TravelStatus", "BoomSSI2"):
        def nan_message(handle: h5py.File, stream: str = stream) -> None:
            group = handle.get(f"can/can0/decoded/{stream}")
            for name, dataset in (group.items() if group is not None else []):
                if name not in ("t_ns", "source_address"):
                    dataset[...] = np.nan
        yield f"values {stream}: every signal NaN", nan_message
    yield "values can/can0: id beyond 32 bits of a standard frame", _dataset(
        "can/can0", "id", lambda d: np.full(d.shape, 2**32 - 1, dtype=np.uint32), np.uint32)
    yield "values can/can0: dlc 99", _set_values("can/can0", "dlc", lambda d: np.full_like(d, 99))
    yield "values can/can0: dlc 255", _set_values("can/can0", "dlc", lambda d: np.full_like(d, 255))
    yield "values can/can0: data 3 columns", _dataset("can/can0", "data", lambda d: d[:, :3])
    yield "values can/can0: data 64 columns without fd", _dataset(
        "can/can0", "data", lambda d: np.zeros((len(d), 64), np.uint8))


def _attribute_cases() -> Iterator[tuple[str, Edit]]:
    commands = "control/commands"
    yield "attribute commands names: missing", _del_attr(commands, "names")
    yield "attribute commands names: 3 for 6 columns", _set_attr(commands, "names", np.array(["a", "b", "c"], object))
    yield "attribute commands names: 9 for 6 columns", _set_attr(commands, "names", np.array(list("abcdefghi"), object))
    yield "attribute commands names: numbers", _set_attr(commands, "names", np.arange(6))
    yield "attribute commands names: 2-D", _set_attr(commands, "names", np.zeros((2, 3)))
    yield "attribute commands names: 100000 names", _set_attr(commands, "names", np.arange(100_000))
    yield "attribute commands names: one string", _set_attr(commands, "names", "boom")
    yield "attribute commands units: missing", _del_attr(commands, "units")
    yield "attribute axes names: missing", _del_attr("joystick/operator/axes", "names")
    yield "attribute axes names: 2 for 6 axes", _set_attr("joystick/operator/axes", "names",
                                                          np.array(["x", "y"], object))
    yield "attribute EngSpeed unit: number", _set_attr("can/can0/decoded/EEC1/EngSpeed", "unit", 5)
    yield "attribute EngSpeed unit: missing", _del_attr("can/can0/decoded/EEC1/EngSpeed", "unit")
    yield "attribute EngSpeed unit: 1 MB", _set_attr("can/can0/decoded/EEC1/EngSpeed", "unit", "u" * 1_000_000)
    for value in ("lots", -1, np.float64("nan"), np.uint64(2**64 - 1), np.arange(3)):
        yield f"attribute control dropped = {value!r}", _set_attr("control", "dropped", value)
    yield "attribute can0 fd = 'yes'", _set_attr("can/can0", "fd", "yes")
    yield "attribute can0 fd missing", _del_attr("can/can0", "fd")
    camera = "cameras/side"
    for key, values in (("width", (10**9, 0, -1, "wide", np.float64("nan"), 2**40)),
                        ("height", (10**9, 0, -480, "high", np.float64("inf"))),
                        ("nominal_fps", (np.float64("nan"), 0.0, -30.0, 1e12, "fast", np.float64("inf"))),
                        ("encoding", ("png", 7))):
        for value in values:
            yield f"attribute camera {key} = {value!r}", _set_attr(camera, key, value)
        yield f"attribute camera {key}: missing", _del_attr(camera, key)


def _frame_cases() -> Iterator[tuple[str, Edit]]:
    rng = np.random.default_rng(11)

    def middle(frame: Callable[[], np.ndarray]) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
        return lambda f: [*f[:len(f) // 2], frame(), *f[len(f) // 2 + 1:]]

    yield "frames: one random-bytes frame in the middle", _frames(middle(lambda: rng.integers(0, 256, 3000, np.uint8)))
    yield "frames: every frame random bytes", _frames(lambda f: [rng.integers(0, 256, 500, np.uint8) for _ in f])
    yield "frames: first frame empty", _frames(lambda f: [np.zeros(0, np.uint8), *f[1:]])
    yield "frames: every frame empty", _frames(lambda f: [np.zeros(0, np.uint8) for _ in f])
    yield "frames: truncated JPEG in the middle", _frames(middle(lambda: _jpeg(320, 240)[:100]))
    yield "frames: truncated last JPEG", _frames(lambda f: [*f[:-1], f[-1][: len(f[-1]) // 2]])
    yield "frames: JPEG header then junk", _frames(middle(lambda: np.concatenate(
        [np.frombuffer(b"\xff\xd8\xff\xe0", np.uint8), rng.integers(0, 256, 2000, np.uint8)])))
    yield "frames: a PNG frame", _frames(middle(lambda: _png(320, 240)))
    yield "frames: a 16x16 frame among 320x240 ones", _frames(middle(lambda: _jpeg(16, 16)))
    yield "frames: every frame 16x16 (attributes say 320x240)", _frames(lambda f: [_jpeg(16, 16) for _ in f])
    yield "frames: a 1x1 frame first", _frames(lambda f: [_jpeg(1, 1), *f[1:]])
    yield "frames: first frame declares 60000x60000", _frames(lambda f: [jpeg_declaring(60000, 60000), *f[1:]])
    yield "frames: a frame declares 30000x20000", _frames(middle(lambda: jpeg_declaring(30000, 20000)))
    yield "frames: a 5 MB junk frame", _frames(middle(lambda: rng.integers(0, 256, 5_000_000, np.uint8)))
    yield "frames: grey JPEG", _frames(middle(lambda: cv2.imencode(".jpg", np.zeros((240, 320), np.uint8))[1]
                                             .reshape(-1)))
    yield "camera: no frames at all", _stream_rows("cameras/side", lambda n: np.arange(0))
    yield "camera: one frame only", _stream_rows("cameras/side", lambda n: np.arange(1))
    yield "camera: frames only in the first 100 ms", _stream_rows("cameras/side", lambda n: np.arange(min(n, 2)))
    yield "control: no rows", _stream_rows("control", lambda n: np.arange(0))
    yield "joystick: no rows", _stream_rows("joystick/operator", lambda n: np.arange(0))
    yield "can0: no rows", _stream_rows("can/can0", lambda n: np.arange(0))
    yield "EEC1: no rows", _stream_rows("can/can0/decoded/EEC1", lambda n: np.arange(0))
    yield "events: no rows", _stream_rows("events", lambda n: np.arange(0))
    yield "every stream: one row", _all_streams_rows(lambda n: np.arange(min(n, 1)))
    yield "every stream: no rows", _all_streams_rows(lambda n: np.arange(0))
    yield "camera: whole stream declares 10**12 rows", _whole_stream_absurd("cameras/side")
    yield "control: whole stream declares 10**12 rows", _whole_stream_absurd("control")


def _all_streams_rows(rows: Callable[[int], np.ndarray]) -> Edit:
    def edit(handle: h5py.File) -> None:
        for group in _streams(handle):
            _stream_rows(group.name.strip("/"), rows)(handle)
    return edit


def _group_cases() -> Iterator[tuple[str, Edit]]:
    for group in ("control", "events", "cameras", "can", "joystick", "cameras/side", "can/can0/decoded"):
        yield f"group /{group}: missing", _delete(group)

    def junk_group(handle: h5py.File) -> None:
        junk = handle.create_group("junk")
        junk["data"] = np.arange(10)
        junk.attrs["x"] = "y"
    yield "group: extra junk group", junk_group

    def junk_stream(handle: h5py.File) -> None:
        handle.create_group("junk/stream")["t_ns"] = np.arange(5, dtype=np.int64)
    yield "group: an undefined stream", junk_stream

    def nested_stream(handle: h5py.File) -> None:
        handle["control"].create_group("inner")["t_ns"] = np.arange(5, dtype=np.int64)
    yield "group: a stream inside /control", nested_stream

    def root_dataset(handle: h5py.File) -> None:
        handle["extra"] = np.arange(1000)
    yield "group: a dataset at the root", root_dataset

    def cameras_dataset(handle: h5py.File) -> None:
        del handle["cameras"]
        handle["cameras"] = np.arange(3)
    yield "group /cameras: a dataset", cameras_dataset

    def hard_loop(handle: h5py.File) -> None:
        handle["control/loop"] = handle["/"]
    yield "group: hard link from /control back to the root", hard_loop

    def soft_loop(handle: h5py.File) -> None:
        handle["loop"] = h5py.SoftLink("/loop")
    yield "group: soft link to itself", soft_loop

    def external_camera(handle: h5py.File) -> None:
        handle["cameras/elsewhere"] = h5py.ExternalLink("/etc/hostname", "/cameras/side")
    yield "group: external link to a camera in another file", external_camera

    def aliased_stream(handle: h5py.File) -> None:
        handle["cameras/side2"] = handle["cameras/side"]
    yield "group: the same camera under two names", aliased_stream

    def many_cameras(handle: h5py.File) -> None:
        for k in range(40):
            handle.copy("cameras/side", f"cameras/copy{k:02d}")
    yield "group: 40 cameras", many_cameras

    def deep(handle: h5py.File) -> None:
        handle.create_group("/".join(f"d{k}" for k in range(60)))
    yield "group: 60 levels deep", deep

    def annotations(kind: str) -> Edit:
        def edit(handle: h5py.File) -> None:
            group = handle.create_group("annotations")
            text = h5py.string_dtype()
            start = int(handle.attrs["start_t_ns"])
            group["t_start_ns"] = np.array([start, start + 10], np.int64)
            group["t_end_ns"] = np.array([start + 5, start + 2], np.int64) if kind == "reversed" else \
                np.array([start + 5, start + 20], np.int64)
            group.create_dataset("label", data=["dig", "fly" if kind == "label" else "dump"], dtype=text)
            if kind != "missing":
                group.create_dataset("source", data=["proposed", "engineer"], dtype=text)
            group.attrs.update({"author": "a", "created_at": "now", "status": "maybe" if kind == "status" else
                                "accepted", "revision": "one" if kind == "revision" else 1})
        return edit
    for kind in ("reversed", "label", "missing", "status", "revision"):
        yield f"group /annotations: {kind}", annotations(kind)


def _event_cases() -> Iterator[tuple[str, Edit]]:
    def events(rows: list[tuple[int, str, str]] | Callable[[h5py.File], list[tuple[int, str, str]]]) -> Edit:
        def edit(handle: h5py.File) -> None:
            start = int(handle.attrs["start_t_ns"])
            table = rows(handle) if callable(rows) else [(start + t, k, d) for t, k, d in rows]
            group = handle["events"]
            for name in ("t_ns", "kind", "detail"):
                del group[name]
            text = h5py.string_dtype()
            group["t_ns"] = np.array([r[0] for r in table], np.int64)
            group.create_dataset("kind", data=[r[1] for r in table], dtype=text)
            group.create_dataset("detail", data=[r[2] for r in table], dtype=text)
        return edit

    yield "events: detail not JSON", events([(0, "start", "{not json"), (5, "marker", "}}")])
    yield "events: detail a JSON list", events([(0, "start", "[1, 2]"), (5, "drop", "[3]")])
    yield "events: drop count not a number", events([(0, "drop", json.dumps({"count": "many"})),
                                                     (1, "drop", json.dumps({"count": None})),
                                                     (2, "drop", json.dumps({"count": -5})),
                                                     (3, "drop", json.dumps({"count": 1e300}))])
    yield "events: 1 MB detail", events([(0, "marker", json.dumps({"label": "x" * 1_000_000}))])
    yield "events: 20000 markers", events(lambda h: [(int(h.attrs["start_t_ns"]) + k * 1000, "marker",
                                                       json.dumps({"label": str(k)})) for k in range(20_000)])
    yield "events: far in the future and past", events([(INT64_MAX - int(2e18), "marker", "{}"), (-(10**18), "fault",
                                                                                                 "{}")])
    yield "events: empty strings", events([(0, "", ""), (1, "", "")])
    yield "events: deeply nested JSON", events([(0, "marker", "[" * 5000 + "]" * 5000)])


def _foreign_files(folder: Path, base: Path) -> Iterator[HostileEpisode]:
    rng = random.Random(3)

    def write(name: str, data: bytes) -> HostileEpisode:
        path = folder / f"foreign-{_slug(name)}.h5"
        path.write_bytes(data)
        return HostileEpisode(f"foreign: {name}", "foreign", path)

    yield write("empty file", b"")
    yield write("text", b"this is not an episode\n" * 40)
    yield write("random bytes", bytes(rng.getrandbits(8) for _ in range(4096)))
    yield write("HDF5 signature then zeros", b"\x89HDF\r\n\x1a\n" + bytes(4088))
    yield write("the first 512 bytes of an episode", base.read_bytes()[:512])
    yield write("a JPEG", _jpeg(32, 32).tobytes())
    for name, setup in (("HDF5 without attributes", lambda f: f.create_dataset("x", data=np.arange(4))),
                        ("HDF5 of another schema", lambda f: f.attrs.update({"schema": "other"})),
                        ("HDF5 with the schema attribute only", lambda f: f.attrs.update({"schema": "excap.episode"})),
                        ("HDF5 schema attribute and version only",
                         lambda f: f.attrs.update({"schema": "excap.episode", "schema_version": 1}))):
        path = folder / f"foreign-{_slug(name)}.h5"
        with h5py.File(path, "w") as handle:
            setup(handle)
        yield HostileEpisode(f"foreign: {name}", "foreign", path)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:80]


# -- the corpus -------------------------------------------------------------------------------------------------


def _edited(base: Path, folder: Path, number: int, name: str, category: str, edit: Edit) -> HostileEpisode:
    path = folder / f"{category}-{number:03d}-{_slug(name)}.h5"
    shutil.copyfile(base, path)
    with h5py.File(path, "r+") as handle:
        edit(handle)
    return HostileEpisode(f"{category}: {name}", category, path)


def _truncation_offsets(size: int, count: int) -> list[int]:
    fixed = [0, 1, 7, 8, 47, 48, 95, 96, 100, 511, 512, 1000, 2047, 2048, 4096, size - 8, size - 1]
    even = np.linspace(4096, size - 16, max(0, count - len(fixed))).astype(int).tolist()
    return sorted({o for o in fixed + even if 0 <= o < size})


def hostile_corpus(source: Path, folder: Path, seed: int = 0, truncations: int = 32, metadata_flips: int = 48,
                   data_flips: int = 12) -> list[HostileEpisode]:
    """Write the corpus made from the real episode `source` into `folder` (created); return what it holds."""
    from excap.episode.schema import load_episode_schema

    folder.mkdir(parents=True, exist_ok=True)
    base = compact_copy(source, folder / "base-compact-copy.h5")
    corpus: list[HostileEpisode] = [HostileEpisode("base: compact copy of the real episode", "base", base)]
    rng = random.Random(seed)
    data = base.read_bytes()
    for offset in _truncation_offsets(len(data), truncations):
        path = folder / f"truncation-{offset:08d}.h5"
        path.write_bytes(data[:offset])
        corpus.append(HostileEpisode(f"truncation: first {offset} bytes", "truncation", path))
    meta = metadata_offsets(base)
    for offset in sorted(rng.sample(meta, min(metadata_flips, len(meta)))):
        bit = rng.randrange(8)
        path = folder / f"bitflip-metadata-{offset:08d}-{bit}.h5"
        path.write_bytes(flip_bit(data, offset, bit))
        corpus.append(HostileEpisode(f"bitflip-metadata: byte {offset} bit {bit}", "bitflip-metadata", path))
    raw = [o for start, end in raw_data_ranges(base) for o in range(start, min(end, len(data)))]
    for offset in sorted(rng.sample(raw, min(data_flips, len(raw)))):
        bit = rng.choice([7, 6, 5]) if rng.random() < 0.5 else rng.randrange(8)
        path = folder / f"bitflip-data-{offset:08d}-{bit}.h5"
        path.write_bytes(flip_bit(data, offset, bit))
        corpus.append(HostileEpisode(f"bitflip-data: byte {offset} bit {bit}", "bitflip-data", path))
    schema_root = load_episode_schema(1)["root_attributes"]
    groups: list[tuple[str, Iterator[tuple[str, Edit]]]] = [
        ("root-attribute", _root_attribute_cases(schema_root)), ("dataset", _dataset_cases()),
        ("timestamps", _timestamp_cases()), ("values", _value_cases()), ("attributes", _attribute_cases()),
        ("frames", _frame_cases()), ("groups", _group_cases()), ("events", _event_cases()),
    ]
    for category, cases in groups:
        for number, (name, edit) in enumerate(cases):
            corpus.append(_edited(base, folder, number, name, category, edit))
    corpus += list(_foreign_files(folder, base))
    return corpus


def sample_by_category(corpus: list[HostileEpisode], per_category: int, seed: int = 0) -> list[HostileEpisode]:
    """At most `per_category` files of every category (all of a smaller one), picked with a fixed seed, in corpus
    order: every kind of damage, at a fraction of the cost of the whole corpus."""
    rng = random.Random(seed)
    by_category: dict[str, list[HostileEpisode]] = {}
    for episode in corpus:
        by_category.setdefault(episode.category, []).append(episode)
    chosen = {id(e) for files in by_category.values() for e in rng.sample(files, min(per_category, len(files)))}
    return [episode for episode in corpus if id(episode) in chosen]


def operator_of(episode: Path) -> str:
    with h5py.File(episode, "r") as handle:
        return str(handle.attrs["operator_id"])


def unexportable_copies(source: Path, folder: Path) -> dict[str, str]:
    """Four copies of `source` that validate (quality warnings aside) but cannot be exported with it: a camera
    without frames, frames whose JPEG has no image data, frames of another size, a second camera (another
    machine setup). Returns episode id -> the reason an export gives. The copies get their own episode ids and
    file names."""
    with h5py.File(source, "r") as handle:
        frames = handle["cameras/side/frames"]
        height, width = cv2.imdecode(frames[0], cv2.IMREAD_COLOR).shape[:2]

    def dead_camera(handle: h5py.File) -> None:
        for dataset in handle["cameras/side"].values():
            dataset.resize((0, *dataset.shape[1:]))

    # Every frame between the first and the last is spoiled: which rows an export samples depends on the
    # recording's frame times, and the first and last frames are the ones the layout check reads.
    def undecodable_frames(handle: h5py.File) -> None:
        frames = handle["cameras/side/frames"]
        for row in range(1, len(frames) - 1):
            frame = frames[row].tobytes()
            frames[row] = np.frombuffer(frame[:frame.find(b"\xff\xda")], np.uint8)  # no scan data

    def smaller_frames(handle: h5py.File) -> None:
        frames = handle["cameras/side/frames"]
        small = _jpeg(16, 16)
        for row in range(1, len(frames) - 1):
            frames[row] = small

    def second_camera(handle: h5py.File) -> None:
        handle.copy("cameras/side", "cameras/rear")

    reasons = {}
    for name, edit, reason in (("dead", dead_camera, "camera 'side' has no frames"),
                               ("broken", undecodable_frames, "is not a decodable JPEG image"),
                               ("small", smaller_frames, f"is 16x16, the camera's frames are {width}x{height}"),
                               ("setup", second_camera, "another machine setup: 2 cameras")):
        episode_id = f"20260101T000000Z_bad-{name}_000000"
        target = folder / f"{episode_id}.h5"
        shutil.copyfile(source, target)
        with h5py.File(target, "r+") as handle:
            handle.attrs["episode_id"] = episode_id
            edit(handle)
        reasons[episode_id] = reason
    return reasons


__all__ = ["HostileEpisode", "compact_copy", "flip_bit", "hostile_corpus", "jpeg_declaring", "metadata_offsets",
           "operator_of", "raw_data_ranges", "unexportable_copies"]
