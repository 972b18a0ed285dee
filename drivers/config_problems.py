"""Mistakes in configuration documents as excap reports them: one `Problem` per mistake (the dotted key and what
is wrong), translated from pydantic's validation errors by following each error's location through the model
types (`problems_from`), and raised together as one ConfigError of one line per problem (`raise_problems`)."""

import re
import types
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Tag
from pydantic import ValidationError as PydanticValidationError

from excap.core.errors import ConfigError
from excap.drivers.limits import shown

__all__ = [
    "ERROR_TYPE",
    "Problem",
    "field_type",
    "is_model",
    "key_part",
    "keyed",
    "problem_from_error",
    "problems_from",
    "raise_problems",
    "strip_annotation",
]

ERROR_TYPE = "excap"
"""The pydantic error type of excap's own checks (`excap.drivers.config_schema.invalid`): the message is final."""

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_/@+-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def key_part(name: object) -> str:
    """How one key appears in a dotted key: `.name`, or `['odd key']` for keys with spaces, dots or controls."""
    text = str(name)
    return f".{text}" if _PLAIN_KEY.match(text) else f"[{text!r}]"


def keyed(base: str, name: object) -> str:
    """`base` followed by the key `name` (`patterns.iso`, `patterns['is o']`)."""
    return f"{base}{key_part(name)}".lstrip(".")


@dataclass(frozen=True)
class Problem:
    """One mistake: the dotted key (`joysticks[1].port`, '' for the whole document) and what is wrong."""

    key: str
    message: str

    def line(self, source: object) -> str:
        """`source: key: message` on one line (control characters escaped)."""
        text = f"{source}: {self.key}: {self.message}" if self.key else f"{source}: {self.message}"
        return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def raise_problems(source: object, problems: Iterable[Problem]) -> None:
    """ConfigError with one `source: key: message` line per problem (nothing when there are none)."""
    lines = [problem.line(source) for problem in problems]
    if lines:
        raise ConfigError("\n".join(lines))


def strip_annotation(annotation: Any) -> Any:
    """The type without Annotated metadata and without `| None`."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _union_members(annotation: Any) -> list[Any]:
    """The members of a union, each as written (a member may carry a `Tag`)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for a in get_args(annotation) if a is not type(None)]
    return []


def _tags(member: Any) -> set[str]:
    """How pydantic names a union member in an error location: its `Tag`, or its `type`-like Literal fields."""
    if get_origin(member) is Annotated:
        tags = {m.tag for m in get_args(member)[1:] if isinstance(m, Tag)}
        if tags:
            return tags
    member = strip_annotation(member)
    if not is_model(member):
        return set()
    tags = set()
    for field in member.model_fields.values():
        if get_origin(strip_annotation(field.annotation)) is Literal:
            tags.update(str(v) for v in get_args(strip_annotation(field.annotation)))
    return tags


def field_type(model: type[BaseModel], key: Any) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    return None


@dataclass
class _Place:
    key: str
    owner: type[BaseModel] | None  # the model the last key belongs to
    annotation: Any  # the type at the place


def _place(root: Any, loc: tuple[Any, ...]) -> _Place:
    """Follow pydantic's error location through the types: display key, owning model, type found there."""
    parts: list[str] = []
    annotation: Any = root
    owner: type[BaseModel] | None = None
    for part in loc:
        current = strip_annotation(annotation)
        members = _union_members(current)
        if members:
            chosen = next((m for m in members if str(part) in _tags(m)), None)
            if chosen is not None:  # pydantic names the union member it tried
                annotation = chosen
                continue
            current = strip_annotation(members[0])
        if is_model(current):
            owner = current
            annotation = field_type(current, part)
            parts.append(key_part(part))
            continue
        origin = get_origin(current)
        args = get_args(current)
        if isinstance(part, int) and origin in (list, tuple, set, frozenset):
            parts.append(f"[{part}]")
            if origin is tuple and args and args[-1] is not Ellipsis:
                annotation = args[part] if part < len(args) else None
            else:
                annotation = args[0] if args else None
            continue
        if origin is dict:
            if part == "[key]":
                annotation = args[0] if args else None
                continue
            parts.append(key_part(part))
            annotation = args[1] if len(args) > 1 else None
            continue
        parts.append(f"[{part}]" if isinstance(part, int) else key_part(part))
        annotation = None
    return _Place("".join(parts).lstrip("."), owner, annotation)


def _join(key: str, below: str) -> str:
    if not below:
        return key
    return f"{key}{below}" if below.startswith("[") or not key else f"{key}.{below}"


def problem_from_error(error: dict[str, Any], root: Any, prefix: str) -> Problem:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    place = _place(root, tuple(error["loc"]))
    key = place.key
    got = f"(got {shown(value)})"
    if kind == ERROR_TYPE:
        message = str(ctx.get("message", error["msg"]))
        key = _join(key, str(ctx.get("at") or ""))
    elif kind == "missing":
        message = "missing"
    elif kind == "extra_forbidden":
        owner = place.owner
        known = [f.alias or n for n, f in owner.model_fields.items()] if owner else []
        label = getattr(owner, "unknown_key", "unknown key")  # ConfigModel says how it names unknown keys
        message = f"{label} (known: {', '.join(known)})" if known else label
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        field = str(ctx.get("discriminator", "type")).strip("'")
        key = _join(key, field)
        if kind == "union_tag_not_found":
            message = "missing"
        else:
            members = _union_members(strip_annotation(place.annotation))
            family = next((m.family for m in map(strip_annotation, members)
                           if is_model(m) and getattr(m, "family", None)), "")
            tags = ", ".join(sorted({t for m in members for t in _tags(m)}, key=str))
            message = f"unknown {family + ' ' if family else ''}{field} {shown(ctx.get('tag'))} (known: {tags})"
    elif kind in ("bool_type", "bool_parsing"):
        message = f"must be true or false {got}"
    elif kind in ("string_type", "string_unicode"):
        message = f"must be text {got}"
    elif kind == "string_too_short":
        message = "must not be empty"
    elif kind == "string_pattern_mismatch":
        message = f"must match {ctx.get('pattern')} {got}"
    elif kind in ("list_type", "tuple_type", "set_type", "frozen_set_type", "iterable_type"):
        message = f"must be a list {got}"
    elif kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type", "dataclass_type"):
        message = f"must be a mapping {got}"
    elif kind == "literal_error":
        message = f"must be {ctx.get('expected')} {got}"
    elif kind in ("too_short", "too_long"):
        message = f"must have {ctx.get('min_length', ctx.get('max_length'))} items (has {ctx.get('actual_length')})"
    elif kind == "recursion_loop":
        message = "refers to itself"
    elif kind == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
    else:
        message = " ".join(str(error["msg"]).split())
    return Problem(_join(prefix, key), message)


def problems_from(exc: PydanticValidationError, root: Any, prefix: str = "",
                  loc: tuple[Any, ...] = ()) -> list[Problem]:
    """One Problem per pydantic error; `root` is the type validated, `loc` where it sits below `prefix`'s root."""
    return [problem_from_error({**error, "loc": (*loc, *error["loc"])}, root, prefix)
            for error in exc.errors(include_url=False)]
