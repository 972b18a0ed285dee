"""Reading YAML files that users write (station configs, profiles, calibrations, registries), with bounds.

`load_yaml(path, what)` refuses, with one ConfigError line naming the file, what a configuration
never needs and an attacker would use: files over `MAX_BYTES`, documents that expand (through
anchors and aliases) to more than `MAX_NODES` nodes — a 1.6 KB "billion laughs" document expands to
billions — aliases that refer to themselves, nesting deeper than `MAX_DEPTH`, and keys given twice.
The composed node graph is checked before any Python object is built, so refusing is fast.
"""

from pathlib import Path
from typing import Any

import yaml

from excap.core.errors import ConfigError

MAX_BYTES = 1_000_000
MAX_NODES = 100_000
"""Nodes of the document with every alias expanded (a large station config has a few hundred)."""
MAX_DEPTH = 64

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _check_graph(root: yaml.Node) -> None:
    """Count the nodes of the expanded document without expanding it; refuse cycles, depth and duplicate keys."""
    expanded: dict[int, int] = {}
    # Iterative post-order walk over the node graph (aliases are shared nodes).
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    on_path: set[int] = set()
    while stack:
        node, depth, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            children = _children(node)
            total = 1 + sum(expanded[id(child)] for child in children)
            expanded[key] = min(total, MAX_NODES + 1)
            if total > MAX_NODES:
                raise ConfigError(f"expands to more than {MAX_NODES} values (anchors and aliases): refused")
            continue
        if key in expanded:
            continue
        if key in on_path:
            raise ConfigError("an alias refers to the node that contains it: refused")
        if depth > MAX_DEPTH:
            raise ConfigError(f"nested deeper than {MAX_DEPTH} levels: refused")
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                    if key_node.value in seen:
                        raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key_node.value!r} is given twice")
                    seen.add(key_node.value)
        on_path.add(key)
        stack.append((node, depth, True))
        for child in _children(node):
            if id(child) in on_path:
                raise ConfigError("an alias refers to the node that contains it: refused")
            if id(child) not in expanded:
                stack.append((child, depth + 1, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def parse_yaml(text: str, source: object, what: str) -> Any:
    """The document in `text`; ConfigError `source: ...` for invalid or unbounded YAML."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node)
        return loader.construct_document(node)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {what}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({_one_line(exc)})") from exc
    except RecursionError:
        raise ConfigError(f"{source}: {what}: nested too deeply: refused") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"{source}: {what}: {_one_line(exc)}") from exc
    finally:
        loader.dispose()


def load_yaml(path: str | Path, what: str) -> Any:
    """Read a user's YAML file (`what` names it in errors, e.g. 'station config'); ConfigError on any problem."""
    source = Path(path)
    try:
        with source.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{source}: cannot read {what}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a folder, not a {what} file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read {what}: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{source}: {what} is larger than {MAX_BYTES // 1_000_000} MB: refused")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    return parse_yaml(text, source, what)
