"""Declarative configuration documents: pydantic v2 models with excap's one-line error messages.

Station configs, machine profiles, CAN bus and camera entries, joystick options and calibration
files are pydantic models built from `ConfigModel` and the field types below (numbers take their
range from `excap.drivers.limits`, so the range is in the JSON Schema too). Loading a document:

    document, problems = validate_partially(StationDocument, data)

checks every field and every list item on its own, so one pass finds every mistake; fields and
items that failed are left as None in `document` (a model built with `model_construct`), so the
cross-field checks that follow can still look at the rest. Each problem is one line,
`key.path[index]: message`, translated from pydantic's errors (`problems_from`).
"""

import math
import re
import types
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Strict, StringConstraints, Tag, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError, core_schema

from excap.core.errors import ConfigError
from excap.drivers.limits import Limits, shown, sign_problem

ERROR_TYPE = "excap"

M = TypeVar("M", bound="ConfigModel")


def invalid(message: str, at: str = "") -> PydanticCustomError:
    """An error with this exact message; `at` names a key below the failing value (for model checks)."""
    return PydanticCustomError(ERROR_TYPE, "{message}", {"message": message, "at": at})


class ConfigModel(BaseModel):
    """A mapping of a configuration file: unknown keys are mistakes; attribute docstrings describe the keys."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=False)

    unknown_key: ClassVar[str] = "unknown key"
    """How an unknown key is reported (e.g. 'unknown key for a serial joystick', 'unknown action')."""
    family: ClassVar[str] = ""
    """For members of a union chosen by `type`: what the type names (e.g. 'joystick')."""


@dataclass(frozen=True)
class _Ranged:
    """Field metadata: a number within `limits` (text such as '1e3' is read as a number, NaN and infinity never)."""

    limits: Limits

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        limits = self.limits

        def validate(value: Any) -> float | int:
            number = limits.accept(value)
            if number is None:
                raise invalid(limits.message(value))
            return number

        return core_schema.no_info_plain_validator_function(validate)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return self.limits.json_schema()


class _Sign:
    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        def validate(value: Any) -> float:
            problem = sign_problem(value)
            if problem is not None:
                raise invalid(problem)
            return float(value)

        return core_schema.no_info_plain_validator_function(validate)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "number", "enum": [1, -1]}


@dataclass(frozen=True)
class _Version:
    """Exactly this schema version (a whole number)."""

    version: int

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        def validate(value: Any) -> int:
            if isinstance(value, int) and not isinstance(value, bool) and value == self.version:
                return value
            raise invalid(f"must be {self.version} (got {shown(value)})")

        return core_schema.no_info_plain_validator_function(validate)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "integer", "const": self.version}


def version(number_: int) -> Any:
    """The field type of a schema version: exactly `number_`."""
    return Annotated[int, _Version(number_)]


def number(limits: Limits) -> Any:
    """The field type of a number within `limits`."""
    return Annotated[int if limits.integer else float, _Ranged(limits)]


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        repeated = sorted({v for v in values if values.count(v) > 1})
        raise invalid(f"names must be unique ({', '.join(repeated)} repeated)")
    return values


def _finite_scalars(value: Any) -> Any:
    """Mappings and lists whose numbers are all finite (for values passed on to a library as they are)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise invalid(f"numbers must be finite (got {shown(item)})")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return value


Sign = Annotated[float, _Sign()]
"""Exactly +1 or -1."""
Flag = Annotated[bool, Strict()]
"""true or false (never 'yes', 1 or 'on')."""
Text = Annotated[str, Strict()]
Name = Annotated[str, StringConstraints(strict=True, min_length=1)]
Names = Annotated[list[Name], AfterValidator(_unique)]
"""A list of unique names."""
FiniteValues = Annotated[dict[Name, Any], AfterValidator(_finite_scalars)]


def one_or_more_names(value: Any) -> Any:
    """A single name stands for a list of one."""
    return [value] if isinstance(value, str) else value


NameList = Annotated[Names, BeforeValidator(one_or_more_names)]


def choice(*values: str) -> Any:
    return Literal[values]


# -- errors -----------------------------------------------------------------------------------------------


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


def _strip(annotation: Any) -> Any:
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


def _is_model(annotation: Any) -> bool:
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
    member = _strip(member)
    if not _is_model(member):
        return set()
    tags = set()
    for field in member.model_fields.values():
        if get_origin(_strip(field.annotation)) is Literal:
            tags.update(str(v) for v in get_args(_strip(field.annotation)))
    return tags


def _field(model: type[BaseModel], key: Any) -> Any:
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
        current = _strip(annotation)
        members = _union_members(current)
        if members:
            chosen = next((m for m in members if str(part) in _tags(m)), None)
            if chosen is not None:  # pydantic names the union member it tried
                annotation = chosen
                continue
            current = _strip(members[0])
        if _is_model(current):
            owner = current
            annotation = _field(current, part)
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


def _problem(error: dict[str, Any], root: Any, prefix: str) -> Problem:
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
        label = owner.unknown_key if owner is not None and issubclass(owner, ConfigModel) else "unknown key"
        message = f"{label} (known: {', '.join(known)})" if known else label
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        field = str(ctx.get("discriminator", "type")).strip("'")
        key = _join(key, field)
        if kind == "union_tag_not_found":
            message = "missing"
        else:
            members = _union_members(_strip(place.annotation))
            family = next((m.family for m in map(_strip, members) if _is_model(m) and getattr(m, "family", None)), "")
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
    return [_problem({**error, "loc": (*loc, *error["loc"])}, root, prefix)
            for error in exc.errors(include_url=False)]


# -- validation -------------------------------------------------------------------------------------------


@cache
def adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


@cache
def _field_types(model: type[BaseModel]) -> dict[str, Any]:
    return {name: _field(model, name) for name in model.model_fields}


def _checked_whole(model: type[BaseModel]) -> bool:
    """Models with validators of their own are validated as one value (their checks span their fields)."""
    decorators = model.__pydantic_decorators__
    return bool(decorators.model_validators or decorators.field_validators)


def _allows_none(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _allows_none(get_args(annotation)[0])
    return origin in (Union, types.UnionType) and type(None) in get_args(annotation)


class _Collector:
    def __init__(self, root: Any, prefix: str) -> None:
        self.root = root
        self.prefix = prefix
        self.problems: list[Problem] = []

    def error(self, kind: str, loc: tuple[Any, ...], value: Any = None, **ctx: Any) -> None:
        self.problems.append(_problem({"type": kind, "loc": loc, "msg": kind, "input": value, "ctx": ctx},
                                      self.root, self.prefix))

    def validate(self, annotation: Any, value: Any, loc: tuple[Any, ...]) -> Any:
        try:
            return adapter(annotation).validate_python(value)
        except PydanticValidationError as exc:
            self.problems.extend(problems_from(exc, self.root, self.prefix, loc))
            return None
        except RecursionError:
            self.error(ERROR_TYPE, loc, value, message="nested too deeply")
            return None

    def model(self, model: type[M], data: Any, loc: tuple[Any, ...]) -> M | None:
        if not isinstance(data, dict):
            self.error("model_type", loc, data)
            return None
        known = {key for name, field in model.model_fields.items() for key in (name, field.alias) if key}
        for key in data:
            if key not in known:
                self.error("extra_forbidden", (*loc, key), data[key])
        values: dict[str, Any] = {}
        for name, field in model.model_fields.items():
            key = field.alias or name
            annotation = _field_types(model)[name]
            if key not in data or (data[key] is None and not _allows_none(field.annotation) and
                                   not field.is_required()):
                if field.is_required():
                    self.error("missing", (*loc, key), data)
                    values[name] = None
                else:
                    values[name] = field.get_default(call_default_factory=True)
                continue
            values[name] = self.value(annotation, data[key], (*loc, key))
        return model.model_construct(**values)

    def value(self, annotation: Any, value: Any, loc: tuple[Any, ...]) -> Any:
        inner = _strip(annotation)
        if value is not None and _is_model(inner) and issubclass(inner, ConfigModel) and not _checked_whole(inner):
            return self.model(inner, value, loc)
        if get_origin(inner) is list and isinstance(value, list) and not _has_list_checks(annotation):
            item_type = get_args(inner)[0] if get_args(inner) else Any
            return [self.validate(item_type, item, (*loc, index)) for index, item in enumerate(value)]
        return self.validate(annotation, value, loc)


def _has_list_checks(annotation: Any) -> bool:
    """A list type with validators of its own (e.g. unique names) is validated as one value."""
    return get_origin(annotation) is Annotated and any(
        not isinstance(m, type) for m in get_args(annotation)[1:])


def validate_partially(model: type[M], data: Any, prefix: str = "") -> tuple[M | None, list[Problem]]:
    """Validate every field and list item on its own: the document (failed parts None) and every problem."""
    collector = _Collector(model, prefix)
    document = collector.model(model, data, ())
    return document, collector.problems


def validate_whole(annotation: Any, data: Any, prefix: str = "") -> tuple[Any, list[Problem]]:
    """Validate `data` as one value of `annotation`: the result (None on failure) and every problem."""
    collector = _Collector(annotation, prefix)
    result = collector.validate(annotation, data, ())
    return result, collector.problems

