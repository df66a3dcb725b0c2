"""Checking spec values against parameter types (plain Python). Errors say what was expected."""
from __future__ import annotations

import types
import typing

import attrs

from diffc.registry.core import type_name


class ValueTypeError(Exception):
    pass


def coerce(value, tp):
    """Return `value` converted to `tp` (int -> float, list -> tuple), or raise ValueTypeError."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        for arg in typing.get_args(tp):
            try:
                return coerce(value, arg)
            except ValueTypeError:
                continue
        raise ValueTypeError(f"expected {type_name(tp)}, got {describe(value)}")
    if tp is type(None):
        if value is None:
            return None
        raise ValueTypeError(f"expected none, got {describe(value)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueTypeError(f"expected {type_name(tp)}, got {describe(value)}")
        (item,) = typing.get_args(tp)[:1] or (typing.Any,)
        items = [v if item is typing.Any else coerce(v, item) for v in value]
        return tuple(items) if origin is tuple else list(items)
    if tp is typing.Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ValueTypeError(f"expected {type_name(tp)}, got {describe(value)}")


def describe(value) -> str:
    if isinstance(value, bool):
        return f"bool {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, (list, tuple)):
        return f"list of {len(value)}"
    if value is None:
        return "none"
    return getattr(value, "describe", lambda: type(value).__name__)()


def required_fields(cls) -> list[str]:
    return [f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING]
