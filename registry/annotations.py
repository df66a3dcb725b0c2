"""Annotations on inputs, read by the compiler itself (diffc.compiler.inputs). A method's annotation lives in
its own module, with the method (diffc.methods)."""
from __future__ import annotations

import attrs

from diffc.registry.core import annotation
from diffc.registry.validators import unit_interval


@annotation("drop", targets={"input"}, positional=("p",))
class Drop:
    """Condition dropout for classifier-free guidance (Ho & Salimans 2022, Sec. 3.2)."""
    p: float = attrs.field(default=0.1, validator=unit_interval)


@annotation("control", targets={"input"})
class Control:
    """Mark a condition as control metadata (Berrada et al., NeurIPS 2024, Sec. 3.1), guided apart from semantics."""

