"""Checks an episode file against the episode schema: one clear line per problem."""

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from capture_node.annotation_store import recover_annotation
from capture_node.episode_schema import load_episode_schema, stream_rule, supported_versions
from capture_node.errors import EpisodeError
from capture_node.reader import stream_paths

_ATTR_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int, np.integer),
    "float": (float, int, np.floating, np.integer),
    "bool": (bool, np.bool_),
}


def _dtype_ok(dataset: h5py.Dataset, expected: str) -> bool:
    if expected == "vlen_uint8":
        base = h5py.check_vlen_dtype(dataset.dtype)
        return base is not None and np.dtype(base) == np.uint8
    if expected == "str":
        return h5py.check_string_dtype(dataset.dtype) is not None
    return dataset.dtype == np.dtype(expected)


def _check_root(attrs: h5py.AttributeManager, schema: dict[str, Any]) -> list[str]:
    problems = []
    for name, rule in schema["root_attributes"].items():
        if name not in attrs:
            if rule.get("required"):
                problems.append(f"root attribute {name!r} is missing")
            continue
        value = attrs[name]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        kinds = _ATTR_TYPES[rule["type"]]
        if rule["type"] in ("int", "float") and isinstance(value, bool | np.bool_):
            kinds = ()
        if not isinstance(value, kinds):
            problems.append(f"root attribute {name!r} should be {rule['type']}, is {type(value).__name__}")
            continue
        if "const" in rule and value != rule["const"]:
            problems.append(f"root attribute {name!r} is {value!r}, expected {rule['const']!r}")
        if "enum" in rule and value not in rule["enum"]:
            problems.append(f"root attribute {name!r} is {value!r}, not one of {', '.join(rule['enum'])}")
    return problems


def _check_stream(group: h5py.Group, path: str, rule: dict[str, Any]) -> list[str]:
    problems = []
    for attr in rule.get("attrs", []):
        if attr not in group.attrs:
            problems.append(f"/{path}: group attribute {attr!r} is missing")
    lengths: dict[str, int] = {}
    expected = rule.get("datasets", {})
    for name, item in group.items():
        if not isinstance(item, h5py.Dataset):
            continue
        spec = expected.get(name) or rule.get("other_datasets")
        if spec is None:
            problems.append(f"/{path}/{name}: dataset not defined by the schema")
            continue
        if not _dtype_ok(item, spec["dtype"]):
            problems.append(f"/{path}/{name}: dtype {item.dtype} should be {spec['dtype']}")
        if item.ndim != spec["ndim"]:
            problems.append(f"/{path}/{name}: has {item.ndim} dimensions, should have {spec['ndim']}")
        for attr in spec.get("attrs", []):
            if attr not in item.attrs:
                problems.append(f"/{path}/{name}: attribute {attr!r} is missing")
        if "names" in spec.get("attrs", []) and "names" in item.attrs and item.ndim == 2 \
                and len(item.attrs["names"]) != item.shape[1]:
            problems.append(f"/{path}/{name}: {len(item.attrs['names'])} names for {item.shape[1]} columns")
        lengths[name] = item.shape[0] if item.ndim else 0
    for name in expected:
        if name not in group or not isinstance(group[name], h5py.Dataset):
            problems.append(f"/{path}/{name}: dataset is missing")
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(lengths.items()))
        problems.append(f"/{path}: datasets differ in length ({detail})")
    if "t_ns" in group and isinstance(group["t_ns"], h5py.Dataset) and path != "events":
        t_ns = group["t_ns"][()]
        if t_ns.size > 1:
            backwards = int(np.count_nonzero(np.diff(t_ns) < 0))
            if backwards:
                problems.append(f"/{path}/t_ns: goes backwards {backwards} times")
    if "frames" in group and isinstance(group["frames"], h5py.Dataset) and group["frames"].shape[0]:
        frames = group["frames"]
        for index in {0, frames.shape[0] - 1}:
            if bytes(frames[index][:2]) != b"\xff\xd8":
                problems.append(f"/{path}/frames[{index}]: not a JPEG image")
    return problems


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
        if not isinstance(value, _ATTR_TYPES[spec["type"]]) or is_bool != (spec["type"] == "bool"):
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


def validate_episode(path: Path) -> list[str]:
    """Problems found in one file; an empty list means the episode is valid.

    A leftover annotation sidecar (an interrupted `excap annotate`) is applied first, see annotation_store."""
    if not path.exists():
        return [f"{path}: no such file"]
    if not h5py.is_hdf5(path):
        return [f"{path}: not an HDF5 file"]
    try:
        recover_annotation(path)
    except (EpisodeError, OSError) as exc:
        return [f"{path}: leftover annotation sidecar could not be applied ({exc})"]
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        return [f"{path}: HDF5 file cannot be opened ({exc})"]
    with handle:
        schema_name = handle.attrs.get("schema")
        if isinstance(schema_name, bytes):
            schema_name = schema_name.decode()
        if schema_name != "excap.episode":
            return [f"{path}: not an excap episode (foreign HDF5 file: root attribute schema is "
                    f"{schema_name!r}, expected 'excap.episode')"]
        version = handle.attrs.get("schema_version")
        if version not in supported_versions():
            return [f"{path}: unsupported schema_version {version!r} (supported: {supported_versions()})"]
        schema = load_episode_schema(int(version))
        problems = [f"{path}: {p}" for p in _check_root(handle.attrs, schema)]
        found = stream_paths(handle)
        for pattern, rule in schema["streams"].items():
            if rule.get("required") and pattern not in found:
                problems.append(f"{path}: required stream /{pattern} is missing")
        for stream in found:
            matched = stream_rule(schema, stream)
            if matched is None:
                problems.append(f"{path}: /{stream}: stream not defined by the schema")
                continue
            problems += [f"{path}: {p}" for p in _check_stream(handle[stream], stream, matched[1])]
        for name, rule in schema.get("groups", {}).items():
            item = handle.get(name)
            if item is None:
                if rule.get("required"):
                    problems.append(f"{path}: required group /{name} is missing")
            elif not isinstance(item, h5py.Group):
                problems.append(f"{path}: /{name} should be a group")
            else:
                problems += [f"{path}: {p}" for p in _check_group(item, name, rule)]
        return problems
