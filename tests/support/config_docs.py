"""Configuration documents for tests: every numeric key of a JSON Schema, and how to set it in a document.

`numeric_keys(schema)` walks a JSON Schema generated from the config models and yields every key whose
value is (or may be) a number, as a path of steps: a property name, `ANY_KEY` (any key of a mapping),
`ANY_INDEX` (any item of a list), an item position, or `Variant(field, value)` (a list item whose
`field` equals `value`, for lists of a discriminated union). `place(document, key)` finds that key in a
concrete document and returns (container, key, dotted display key), so a test can set a bad value there.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

BAD_VALUES: list[Any] = [math.nan, math.inf, -math.inf, "1e400", -1, -123456789, 0, 1e12, 10**30]
"""NaN, infinities, a number too large for a float (YAML reads `1e400` as text), negative, zero, huge."""

ANY_KEY = "<any key>"
ANY_INDEX = "<any item>"


@dataclass(frozen=True)
class Variant:
    field: str
    value: str


@dataclass(frozen=True)
class Position:
    index: int


Step = str | Variant | Position


@dataclass(frozen=True)
class NumericKey:
    steps: tuple[Step, ...]
    schema: dict[str, Any]  # the leaf's schema (one of its alternatives may be a string)

    def __str__(self) -> str:
        out = ""
        for step in self.steps:
            if isinstance(step, Variant):
                out += f"[{step.field}={step.value}]"
            elif isinstance(step, Position):
                out += f"[{step.index}]"
            elif step == ANY_INDEX:
                out += "[]"
            else:
                out += f".{step}" if out else step
        return out


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _is_number(node: dict[str, Any]) -> bool:
    if node.get("type") in ("number", "integer"):
        return True
    values = node.get("enum", []) + ([node["const"]] if "const" in node else [])
    return bool(values) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def numeric_keys(root: dict[str, Any]) -> list[NumericKey]:
    found: dict[str, NumericKey] = {}

    def walk(node: dict[str, Any], steps: tuple[Step, ...]) -> Iterator[NumericKey]:
        node = _resolve(root, node)
        if "oneOf" in node and "discriminator" in node:
            field = node["discriminator"]["propertyName"]
            for value, ref in node["discriminator"]["mapping"].items():
                yield from walk({"$ref": ref}, (*steps, Variant(field, value)))
            return
        alternatives = [_resolve(root, a) for a in node.get("anyOf", []) + node.get("oneOf", [])]
        if any(_is_number(a) for a in alternatives) or _is_number(node):
            yield NumericKey(steps, node)
            return
        for alternative in alternatives:
            yield from walk(alternative, steps)
        for name, child in node.get("properties", {}).items():
            yield from walk(child, (*steps, name))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            yield from walk(extra, (*steps, ANY_KEY))
        for index, child in enumerate(node.get("prefixItems", [])):
            yield from walk(child, (*steps, Position(index)))
        if isinstance(node.get("items"), dict):
            yield from walk(node["items"], (*steps, ANY_INDEX))

    for key in walk(root, ()):
        found.setdefault(str(key), key)
    return list(found.values())


class NotInDocument(LookupError):
    """The document has no container for a numeric key (extend the test's full document)."""


def place(document: Any, key: NumericKey) -> tuple[Any, Any, str]:
    """(container, key or index in it, dotted key as excap prints it) of `key` in `document`."""
    container: Any = document
    shown = ""
    steps = list(key.steps)
    for position, step in enumerate(steps):
        last = position == len(steps) - 1
        if isinstance(step, Variant):
            choices = [i for i, item in enumerate(container) if isinstance(item, dict) and
                       item.get(step.field) == step.value] if isinstance(container, list) else []
            if not choices:
                raise NotInDocument(f"{key}: no item with {step.field}={step.value} at {shown or 'the top'}")
            continue_at: Any = choices[0]
        elif isinstance(step, Position):
            continue_at = step.index
        elif step == ANY_INDEX:
            if isinstance(steps[position + 1] if not last else None, Variant):
                continue
            if not isinstance(container, list) or not container:
                raise NotInDocument(f"{key}: no list items at {shown}")
            continue_at = 0
        elif step == ANY_KEY:
            if not isinstance(container, dict) or not container:
                raise NotInDocument(f"{key}: no mapping entries at {shown}")
            continue_at = next(iter(container))
        else:
            continue_at = step
        if isinstance(continue_at, int) and not isinstance(container, dict):
            shown += f"[{continue_at}]"
        else:
            shown += f".{continue_at}" if shown else str(continue_at)
        if last:
            if isinstance(container, dict) or (isinstance(container, list) and continue_at < len(container)):
                return container, continue_at, shown
            raise NotInDocument(f"{key}: no container at {shown}")
        try:
            container = container[continue_at]
        except (KeyError, IndexError, TypeError):
            raise NotInDocument(f"{key}: nothing at {shown}") from None
    raise NotInDocument(f"{key}: empty path")


def accepted_by(schema: dict[str, Any], value: Any) -> bool:
    """Whether a leaf schema (maybe with string and null alternatives) admits `value`, numbers read as excap does."""
    for alternative in schema.get("anyOf", [schema]):
        kind = alternative.get("type")
        if kind == "null" and value is None:
            return True
        if kind == "string" and isinstance(value, str) and len(value) >= alternative.get("minLength", 0):
            return True
        if kind == "string" or kind == "null" or isinstance(value, bool):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            continue
        if not math.isfinite(number):
            continue
        if kind == "integer" and not number.is_integer():
            continue
        if "enum" in alternative and number not in alternative["enum"]:
            continue
        if "const" in alternative and number != alternative["const"]:
            continue
        if number < alternative.get("minimum", -math.inf) or number > alternative.get("maximum", math.inf):
            continue
        if "exclusiveMinimum" in alternative and number <= alternative["exclusiveMinimum"]:
            continue
        return True
    return False
