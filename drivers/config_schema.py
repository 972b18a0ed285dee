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
import types
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Strict, StringConstraints, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError, core_schema

from excap.drivers.config_problems import (
    ERROR_TYPE,
    Problem,
    field_type,
    is_model,
    keyed,
    problem_from_error,
    problems_from,
    raise_problems,
    strip_annotation,
)
from excap.drivers.limits import Limits, shown, sign_problem

__all__ = ["ConfigModel", "FiniteValues", "Flag", "Name", "NameList", "Names", "Problem", "Sign", "Text", "adapter",
           "choice", "invalid", "keyed", "number", "one_or_more_names", "problems_from", "raise_problems",
           "validate_partially", "validate_whole", "version"]

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


# -- validation (the problems found: excap.drivers.config_problems) ----------------------------------------


@cache
def adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


@cache
def _field_types(model: type[BaseModel]) -> dict[str, Any]:
    return {name: field_type(model, name) for name in model.model_fields}


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
        self.problems.append(problem_from_error({"type": kind, "loc": loc, "msg": kind, "input": value, "ctx": ctx},
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
        inner = strip_annotation(annotation)
        if value is not None and is_model(inner) and issubclass(inner, ConfigModel) and not _checked_whole(inner):
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
