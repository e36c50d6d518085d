"""Validation of plain data (parsed YAML) into msgspec structs, with dsd's one-line errors.

msgspec stops at the first error and says where it is (`Expected `int` >= 1 - at
`$.cluster.drafts[0].count``); this turns that into `cluster.drafts[0].count: expected
int >= 1, got 0`: the field path first, the offending value named, and for a choice the
values allowed.
"""

from __future__ import annotations

import re
import types
import typing
from functools import cache
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta

from dsd.errors import ConfigError

T = TypeVar("T")

# Number constraints, checked (and named in errors) by msgspec.
PositiveInt = Annotated[int, Meta(ge=1)]
NonNegativeInt = Annotated[int, Meta(ge=0)]
Positive = Annotated[float, Meta(gt=0)]
NonNegative = Annotated[float, Meta(ge=0)]
Probability = Annotated[float, Meta(ge=0, le=1)]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A section of a config or catalog: unknown keys are errors; fields are set by name.
    Subclasses repeat `kw_only=True` (msgspec applies it to each class's own fields), so
    a required field may follow one with a default."""

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>.*)`)?$", re.S)
_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[([^\]]*)\]")
_UNKNOWN = re.compile(r"^Object contains unknown field `(.+)`$")
_MISSING = re.compile(r"^Object missing required field `(.+)`$")
_EXPECTED = re.compile(r"^Expected `([^`]+)`(.*?)(?:, got `[^`]+`)?$")
_ENUM = re.compile(r"^Invalid enum value (.+)$")
_FIELD_CHECK = re.compile(r"^(\w+): (.*)$", re.S)  # "field: message" from a __post_init__


def convert(data: Any, type_: type[T]) -> T:
    """`data` as a `type_` struct; a `ConfigError` naming the field path if it is not one."""
    try:
        return msgspec.convert(data, type_, strict=False, dec_hook=_decode)
    except msgspec.ValidationError as exc:
        loc, msg = describe(exc, data, type_)
        raise ConfigError(f"{loc}: {msg}") from None


def to_builtins(obj: Any, drop_none: bool = False) -> Any:
    """A struct as plain dicts and lists (YAML/JSON-ready); `drop_none` leaves out the
    top level's unset optional fields."""
    data = msgspec.to_builtins(obj, enc_hook=_encode)
    if drop_none and isinstance(data, dict):
        data = {k: v for k, v in data.items() if v is not None}
    return data


@cache  # msgspec.structs.fields resolves the type hints each call (~1 ms)
def required_fields(type_: type) -> tuple[str, ...]:
    """The fields of a struct that have no default, in declaration order."""
    return tuple(f.name for f in msgspec.structs.fields(type_) if f.required)


def describe(exc: msgspec.ValidationError, data: Any, type_: type) -> tuple[str, str]:
    """(field path, message) of a msgspec validation error on `data` against `type_`."""
    m = _AT.match(str(exc))
    msg, parts = m["msg"], _parse_path(m["path"] or "")
    if (u := _UNKNOWN.match(msg)) is not None:
        return _loc([*parts, u[1]]), "unknown key"
    if (u := _MISSING.match(msg)) is not None:
        return _loc([*parts, u[1]]), "required key is missing"
    found, value = _lookup(data, parts)
    got = f", got {value!r}" if found else ""
    if (u := _ENUM.match(msg)) is not None:
        choices = _choices(_field_type(type_, parts))
        if choices:
            return _loc(parts), f"{u[1]} is not one of {', '.join(map(repr, choices))}"
        return _loc(parts), f"{u[1]} is not allowed"
    if (u := _EXPECTED.match(msg)) is not None:
        return _loc(parts), f"expected {u[1]}{u[2]}{got}"
    if (u := _FIELD_CHECK.match(msg)) is not None and _has_field(type_, parts, u[1]):
        return _loc([*parts, u[1]]), u[2]
    return _loc(parts), msg


def _decode(type_: type, obj: Any) -> Any:
    from dsd.config.schema import PolicySpec

    if type_ is PolicySpec:
        return PolicySpec.parse(obj)
    raise NotImplementedError(type_)


def _encode(obj: Any) -> Any:
    from dsd.config.schema import PolicySpec

    if isinstance(obj, PolicySpec):
        return obj.as_dict()
    raise NotImplementedError(type(obj))


def _parse_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for name, index, key in _PART.findall(path):
        parts.append(name or (int(index) if index else key))
    return parts


def _loc(parts: list[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


def _lookup(data: Any, parts: list[str | int]) -> tuple[bool, Any]:
    for part in parts:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, data


def _unwrap(tp: Any) -> list[Any]:
    """The alternatives of a type: Annotated and Optional peeled, unions flattened."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [alt for arg in typing.get_args(tp) for alt in _unwrap(arg)]
    return [tp]


def _field_type(type_: Any, parts: list[str | int]) -> Any:
    """The declared type at a path inside `type_` (None where it cannot be followed)."""
    tp = type_
    for part in parts:
        nxt = None
        for alt in _unwrap(tp):
            if isinstance(part, str) and isinstance(alt, type) and \
                    issubclass(alt, msgspec.Struct):
                hints = typing.get_type_hints(alt, include_extras=True)
                nxt = hints.get(part)
            elif isinstance(part, int) and typing.get_origin(alt) in (list, tuple):
                args = typing.get_args(alt)
                nxt = args[0] if typing.get_origin(alt) is list else args[min(part,
                                                                             len(args) - 1)]
            if nxt is not None:
                break
        if nxt is None:
            return None
        tp = nxt
    return tp


def _choices(tp: Any) -> list[Any]:
    return [v for alt in _unwrap(tp) if typing.get_origin(alt) is typing.Literal
            for v in typing.get_args(alt)]


def _has_field(type_: Any, parts: list[str | int], name: str) -> bool:
    struct = _field_type(type_, parts)
    return any(isinstance(alt, type) and issubclass(alt, msgspec.Struct)
               and name in alt.__struct_fields__ for alt in _unwrap(struct))
