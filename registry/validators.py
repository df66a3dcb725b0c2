"""attrs validators for block and annotation parameters; their messages reach users verbatim."""
from __future__ import annotations


def positive(inst, attribute, value):
    if value is not None and not value > 0:
        raise ValueError(f"'{attribute.name}' must be > 0, got {value}")


def non_negative(inst, attribute, value):
    if value is not None and value < 0:
        raise ValueError(f"'{attribute.name}' must be >= 0, got {value}")


def unit_interval(inst, attribute, value):
    if value is not None and not 0 <= value <= 1:
        raise ValueError(f"'{attribute.name}' must be in [0, 1], got {value}")


def one_of(*choices):
    def check(inst, attribute, value):
        if value not in choices:
            raise ValueError(f"'{attribute.name}' must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return check
