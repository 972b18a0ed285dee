"""The structure of an episode file checked once, from its metadata alone: groups, links, dtypes, shapes, lengths.

`check_structure(handle, file_size)` walks an open HDF5 file without reading any sample data and sorts what it
finds into two lists (messages without the file name):

- `problems`: what readers cannot read safely, so `EpisodeReader` refuses the file with the first of them:
  a root attribute of the wrong type or not finite, an unsafe episode id, a link (soft, external, or a second
  name for an object), a stream the schema does not define, a stream dataset missing or of the wrong dtype or
  rank, datasets of a stream that differ in length, a dataset declaring more data than the file holds, column
  names that are not one text per column;
- `deviations`: what readers tolerate but the schema does not allow, for `excap validate`: a missing root
  attribute or one outside its values, a group or dataset outside every stream, a missing required stream,
  and group attributes readers take as unknown when wrong (`dropped`, `fd`, camera `width`, `height`,
  `nominal_fps`, column units).

Everything is driven by `schemas/episode/v<N>.yaml`, so a stream added to the schema is read without change here.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import h5py
import numpy as np

from excap.episode.jpeg_frames import MAX_SIDE
from excap.episode.schema import load_episode_schema, stream_rule, supported_versions

SCHEMA_NAME = "excap.episode"
EPISODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # file-name safe: outputs are named after it
CONTAINERS = ("cameras", "can", "joystick", "can/*/decoded")  # groups that hold streams
MAX_CAMERA_SIDE = MAX_SIDE  # pixels (excap.episode.jpeg_frames)
TEXT_LIMIT = 60  # characters of a value quoted in a message
ATTRIBUTE_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int, np.integer),
    "float": (float, int, np.floating, np.integer),
    "bool": (bool, np.bool_),
}


@dataclass
class EpisodeStructure:
    streams: list[str] = field(default_factory=list)  # stream paths, sorted, without the leading slash
    metadata: dict[str, Any] = field(default_factory=dict)  # root attributes as read (not converted)
    problems: list[str] = field(default_factory=list)
    deviations: list[str] = field(default_factory=list)
    schema: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)  # stream -> its datasets (checked ones)
    lengths: dict[str, int] = field(default_factory=dict)  # stream -> rows

    @property
    def readable(self) -> bool:
        return not self.problems


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def shown(value: Any) -> str:
    """A value for a message: one line, at most TEXT_LIMIT characters."""
    if isinstance(value, np.generic):
        value = value.item()
    text = " ".join(repr(value).split())
    return text if len(text) <= TEXT_LIMIT else f"{text[:TEXT_LIMIT]}... ({len(text)} characters)"


def read_attributes(node: h5py.HLObject, where: str, problems: list[str]) -> dict[str, Any]:
    """Every attribute of `node` that can be read; one problem per attribute that cannot."""
    try:
        names = list(node.attrs.keys())
    except Exception as exc:  # h5py raises OSError, RuntimeError, KeyError, ... on damaged attribute storage
        problems.append(f"{where}: attributes cannot be read ({one_line(exc)})")
        return {}
    values: dict[str, Any] = {}
    for name in names:
        try:
            values[name] = node.attrs[name]
        except UnicodeDecodeError:
            problems.append(f"{where}: attribute {name!r} is not UTF-8 text")
        except Exception as exc:  # damaged attribute message or unsupported datatype
            problems.append(f"{where}: attribute {name!r} cannot be read ({one_line(exc)})")
    return values


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _utf8(text: str) -> bool:
    """h5py decodes text that is not UTF-8 with lone surrogates, which cannot be printed or stored again."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def _is_int(value: Any) -> TypeGuard[int | np.integer[Any]]:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _root(values: dict[str, Any], schema: dict[str, Any], out: EpisodeStructure) -> None:
    for name, rule in schema["root_attributes"].items():
        if name not in values:
            if rule.get("required"):
                out.deviations.append(f"root attribute {name!r} is missing")
            continue
        value = _text(values[name])
        kinds = ATTRIBUTE_TYPES[rule["type"]]
        if rule["type"] in ("int", "float") and isinstance(value, bool | np.bool_):
            kinds = ()
        if not isinstance(value, kinds):
            out.problems.append(f"root attribute {name!r} should be {rule['type']}, is {type(value).__name__}")
            continue
        if isinstance(value, str) and not _utf8(value):
            out.problems.append(f"root attribute {name!r} is not UTF-8 text")
        elif rule["type"] == "float" and isinstance(value, float | np.floating) and not math.isfinite(value):
            out.problems.append(f"root attribute {name!r} is {value}, not a finite number")
        elif "const" in rule and value != rule["const"]:
            out.deviations.append(f"root attribute {name!r} is {shown(value)}, expected {rule['const']!r}")
        elif "enum" in rule and value not in rule["enum"]:
            out.deviations.append(f"root attribute {name!r} is {shown(value)}, not one of {', '.join(rule['enum'])}")
    episode_id = _text(values.get("episode_id", ""))
    if isinstance(episode_id, str) and "episode_id" in values and not EPISODE_ID.fullmatch(episode_id):
        out.problems.append(f"root attribute 'episode_id' is {shown(episode_id)}: an episode id is 1 to 128 letters, "
                            "digits, '_', '.' or '-', starting with a letter or digit")


def _dtype_ok(dtype: np.dtype, expected: str) -> bool:
    if expected == "vlen_uint8":
        base = h5py.check_vlen_dtype(dtype)
        return base is not None and h5py.check_string_dtype(dtype) is None and np.dtype(base) == np.uint8
    if expected == "str":
        return h5py.check_string_dtype(dtype) is not None
    return dtype == np.dtype(expected)


def _dtype_name(dtype: np.dtype) -> str:
    if h5py.check_string_dtype(dtype) is not None:
        return "str"
    base = h5py.check_vlen_dtype(dtype)
    return f"vlen_{np.dtype(base)}" if base is not None else str(dtype)


def _column_attrs(dsid: h5py.h5d.DatasetID, where: str, out: EpisodeStructure) -> None:
    """The column attributes readers interpret: `names` (text, one per column) and `unit`/`units` (text)."""
    present = [key for key in ("names", "unit", "units") if h5py.h5a.exists(dsid, key.encode())]
    values = {}
    if present:
        attrs = h5py.AttributeManager(h5py.Dataset(dsid))
        for key in present:
            try:
                values[key] = attrs[key]
            except UnicodeDecodeError:
                out.problems.append(f"{where}: attribute {key!r} is not UTF-8 text")
    if "names" in values:
        names = values["names"]
        if isinstance(names, np.ndarray) and names.ndim == 1 and all(isinstance(_text(n), str) and _utf8(_text(n))
                                                                     for n in names):
            if len(dsid.shape) == 2 and len(names) != dsid.shape[1]:
                out.problems.append(f"{where}: {len(names)} names for {dsid.shape[1]} columns")
        else:
            out.problems.append(f"{where}: attribute 'names' should be a list of text, is {shown(names)}")
    for key in ("unit", "units"):
        if key in values and not isinstance(_text(values[key]), str):
            out.deviations.append(f"{where}: attribute {key!r} should be text, is {shown(values[key])}")


def _group_attrs(group: h5py.Group, path: str, out: EpisodeStructure) -> set[str]:
    """The names of a stream group's attributes; readers take the attributes they interpret (`dropped`,
    `fd`, camera `width`, `height`, `nominal_fps`) as unknown when they are wrong, so those are deviations."""
    where = f"/{path}"
    try:
        names = set(group.attrs.keys())
    except Exception as exc:  # damaged attribute storage
        out.problems.append(f"{where}: attributes cannot be read ({one_line(exc)})")
        return set()
    values: dict[str, Any] = {}
    for key in ("dropped", "fd", "width", "height", "nominal_fps"):
        if key in names:
            try:
                values[key] = group.attrs[key]
            except Exception as exc:  # not UTF-8, damaged, unsupported type
                out.deviations.append(f"{where}: attribute {key!r} cannot be read ({one_line(exc)})")
    if "dropped" in values and not (_is_int(values["dropped"]) and int(values["dropped"]) >= 0):
        out.deviations.append(f"{where}: attribute 'dropped' should be a count (an integer >= 0), "
                              f"is {shown(values['dropped'])}")
    if "fd" in values and not isinstance(values["fd"], bool | np.bool_):
        out.deviations.append(f"{where}: attribute 'fd' should be true or false, is {shown(values['fd'])}")
    for key in ("width", "height"):
        if key in values and not (_is_int(values[key]) and 0 <= int(values[key]) <= MAX_CAMERA_SIDE):
            out.deviations.append(f"{where}: attribute {key!r} is {shown(values[key])}, not a size in pixels "
                                  f"(0: unknown, up to {MAX_CAMERA_SIDE})")
    if "nominal_fps" in values:
        value = values["nominal_fps"]
        if not (_is_number(value) and math.isfinite(float(value)) and float(value) >= 0):
            out.deviations.append(f"{where}: attribute 'nominal_fps' is {shown(value)}, not a frame rate "
                                  "(a number >= 0; 0: unknown)")
    return names


@dataclass
class _Tree:
    """Every link of the file (name -> link type) and every object reached through hard links (name -> object
    type), listed with HDF5's own visit functions; objects are opened only when checked."""

    handle: h5py.File
    links: dict[str, int]
    objects: dict[str, int]
    members: dict[str, list[str]] = field(default_factory=dict)  # group path -> names of its links

    def __post_init__(self) -> None:
        for name in sorted(self.links):
            parent, _, member = name.rpartition("/")
            self.members.setdefault(parent, []).append(member)

    def children(self, path: str) -> list[str]:
        return self.members.get(path, [])

    def is_group(self, name: str) -> bool:
        return bool(self.objects.get(name) == h5py.h5o.TYPE_GROUP)

    def is_dataset(self, name: str) -> bool:
        return bool(self.objects.get(name) == h5py.h5o.TYPE_DATASET)

    def open(self, name: str) -> Any:
        return self.handle[name]


def _stream(tree: _Tree, path: str, rule: dict[str, Any], file_size: int, out: EpisodeStructure) -> None:
    where = f"/{path}"
    attrs = _group_attrs(tree.open(path), path, out)
    for attr in rule.get("attrs", []):
        if attr not in attrs:
            out.deviations.append(f"{where}: group attribute {attr!r} is missing")
    expected: dict[str, dict[str, Any]] = rule.get("datasets", {})
    lengths: dict[str, int] = {}
    columns: list[str] = []
    for name in tree.children(path):
        if tree.is_group(f"{path}/{name}"):
            if name in expected:
                out.problems.append(f"{where}/{name}: should be a dataset, is a group")
            elif not (path.startswith("can/") and path.count("/") == 1 and name == "decoded"):
                _foreign_group(tree, f"{path}/{name}", out)
            continue
        if not tree.is_dataset(f"{path}/{name}"):
            continue  # a link (reported with every other link) or a named datatype
        dsid = h5py.h5d.open(tree.handle.id, f"{path}/{name}".encode())  # low level: a fraction of the cost
        spec = expected.get(name) or rule.get("other_datasets")
        dtype, shape = dsid.dtype, dsid.shape
        ndim = len(shape)
        if spec is None:
            out.deviations.append(f"{where}/{name}: dataset not defined by the schema")
        elif not _dtype_ok(dtype, spec["dtype"]) or ndim != spec["ndim"]:
            if not _dtype_ok(dtype, spec["dtype"]):
                out.problems.append(f"{where}/{name}: dtype {_dtype_name(dtype)} should be {spec['dtype']}")
            if ndim != spec["ndim"]:
                out.problems.append(f"{where}/{name}: has {ndim} dimensions, should have {spec['ndim']}")
            continue
        if ndim == 0:
            out.problems.append(f"{where}/{name}: a single value, not a column of samples")
            continue
        declared = int(np.prod(shape, dtype=np.float64)) * max(dtype.itemsize, 1)
        if declared > file_size:
            out.problems.append(f"{where}/{name}: declares {shape[0]} rows ({declared} bytes), more than the "
                                f"{file_size}-byte file holds")
            continue
        _column_attrs(dsid, f"{where}/{name}", out)
        for attr in (spec or {}).get("attrs", []):
            if not h5py.h5a.exists(dsid, attr.encode()):
                out.deviations.append(f"{where}/{name}: attribute {attr!r} is missing")
        lengths[name] = int(shape[0])
        columns.append(name)
    for name in expected:
        if f"{path}/{name}" not in tree.links:
            out.problems.append(f"{where}/{name}: dataset is missing")
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(lengths.items()))
        out.problems.append(f"{where}: datasets differ in length ({detail})")
    out.columns[path] = tuple(columns)
    out.lengths[path] = lengths.get("t_ns", 0)


def _foreign_group(tree: _Tree, path: str, out: EpisodeStructure) -> None:
    if tree.is_dataset(f"{path}/t_ns"):
        out.problems.append(f"/{path}: stream not defined by the schema")
    else:
        out.deviations.append(f"/{path}: group not defined by the schema")


def _holds_data(tree: _Tree, path: str) -> bool:
    """A stream's group holds datasets (or at least a `t_ns` name); `can/<channel>` may hold only `decoded/`."""
    return f"{path}/t_ns" in tree.links or any(tree.is_dataset(f"{path}/{name}") for name in tree.children(path))


def _container(path: str) -> bool:
    return any(len(p.split("/")) == len(path.split("/")) and fnmatch.fnmatchcase(path, p) for p in CONTAINERS)


def _read_tree(handle: h5py.File, out: EpisodeStructure) -> _Tree:
    """All links and objects; soft and external links are problems (episodes hold none), and so is a second
    name for an object (a hard link to a group or dataset stored under another name)."""
    links: dict[str, int] = {}
    handle.id.links.visit(lambda name, info: links.__setitem__(name.decode("utf-8", "replace"), info.type),
                          info=True)
    objects: dict[str, int] = {}
    h5py.h5o.visit(handle.id, lambda name, info: objects.__setitem__(name.decode("utf-8", "replace"), info.type),
                   info=True)
    objects.pop(".", None)
    for name, kind in sorted(links.items()):
        if kind == h5py.h5l.TYPE_SOFT:
            target = handle.get(name, getlink=True)
            out.problems.append(f"/{name}: is a soft link to {shown(target.path)}; episodes hold no links")
        elif kind != h5py.h5l.TYPE_HARD:
            out.problems.append(f"/{name}: is a link to another file; episodes hold no links")
        elif name not in objects:
            out.problems.append(f"/{name}: a second name for an object stored elsewhere in the file")
    return _Tree(handle, links, objects)


def _walk(handle: h5py.File, file_size: int, out: EpisodeStructure) -> None:
    schema = out.schema
    tree = _read_tree(handle, out)
    groups = schema.get("groups", {})
    out.streams = sorted(name for name in tree.objects if tree.is_group(name)
                         and stream_rule(schema, name) is not None and _holds_data(tree, name))
    streams = set(out.streams)
    foreign: list[str] = []

    def settled(name: str) -> bool:
        """Checked elsewhere: inside a stream, in a schema group (e.g. /annotations), or under a foreign group."""
        parent = name.rpartition("/")[0]
        return parent in streams or name.split("/")[0] in groups or any(name.startswith(f"{f}/") for f in foreign)

    for name in sorted(tree.objects):
        group = tree.is_group(name)
        if name in streams and (rule := stream_rule(schema, name)) is not None:
            _stream(tree, name, rule[1], file_size, out)
        elif settled(name) or (group and _container(name)):
            continue
        elif group and stream_rule(schema, name) is not None:
            if tree.children(name) != ["decoded"] or not name.startswith("can/"):
                out.deviations.append(f"/{name}: a stream's group without datasets")
        elif group:
            _foreign_group(tree, name, out)
            foreign.append(name)
        else:
            out.deviations.append(f"/{name}: dataset outside every stream")
    for pattern, rule in schema["streams"].items():
        if rule.get("required") and pattern not in streams:
            out.deviations.append(f"required stream /{pattern} is missing")
    for name, rule in groups.items():
        if name not in tree.objects and rule.get("required"):
            out.deviations.append(f"required group /{name} is missing")
        elif name in tree.objects and not tree.is_group(name):
            out.deviations.append(f"/{name} should be a group")


def check_structure(handle: h5py.File, file_size: int) -> EpisodeStructure:
    """The structure of an open episode file (see the module docstring). Never raises for a damaged file: a file
    that is not an excap episode, or of an unknown schema version, gets that as its single problem."""
    out = EpisodeStructure()
    values = read_attributes(handle, "root", out.problems)
    out.metadata = values
    schema_name = _text(values.get("schema"))
    if not isinstance(schema_name, str) or schema_name != SCHEMA_NAME:
        out.problems = [f"not an excap episode (foreign HDF5 file: root attribute schema is {shown(schema_name)}, "
                        f"expected {SCHEMA_NAME!r})"]
        return out
    version = values.get("schema_version")
    if not _is_int(version) or int(version) not in supported_versions():
        out.problems = [f"unsupported schema_version {shown(version)} (supported: {supported_versions()})"]
        return out
    out.schema = load_episode_schema(int(version))
    _root(values, out.schema, out)
    try:
        _walk(handle, file_size, out)
    except Exception as exc:  # h5py raises anything from KeyError to RuntimeError on a damaged file
        out.problems.append(f"the file's structure cannot be read ({one_line(exc)})")
    return out


__all__ = ["EPISODE_ID", "EpisodeStructure", "check_structure", "one_line", "read_attributes", "shown"]
