"""Explicit limits on what evaluating a spec may cost, so `diffc check` ends quickly on any input.

Each limit is a located error that says what to do. Real specs stay far below them: the largest shipped
spec (the multi-stage U-Net) resolves to 141 nodes in 1,798 steps. Parse-level limits (nesting
depth, literal length) live in diffc.dsl.parser; model-size limits (parameters, tensor sizes) in check.
"""
from __future__ import annotations

import contextlib
import math

from diffc.dsl import ast as A
from diffc.errors import fail

MAX_STEPS = 200_000         # statements and expressions evaluated for one model
MAX_NODES = 10_000          # graph nodes in one model
MAX_ITEMS = 100_000         # list elements (nested ones included), string characters, loop iterations
MAX_INT_BITS = 1024         # integers: about 308 decimal digits
MAX_CALL_DEPTH = 16         # composite blocks calling composite blocks


class Budget:
    """What one model's evaluation has spent so far."""

    def __init__(self):
        self.steps = 0
        self.nodes = 0
        self.calls: list[str] = []

    def step(self, loc: A.Loc, count: int = 1) -> None:
        self.steps += count
        if self.steps > MAX_STEPS:
            raise fail(f"evaluating this model takes more than {MAX_STEPS:,} steps", loc,
                       help="a loop runs far more often than intended: check its count and its `if`s")

    def node(self, loc: A.Loc) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise fail(f"this model has more than {MAX_NODES:,} nodes", loc,
                       help="check the repeat counts and loop lists that lead here")

    @contextlib.contextmanager
    def call(self, block: str, loc: A.Loc):
        if len(self.calls) >= MAX_CALL_DEPTH:
            chain = " -> ".join(self.calls[-4:] + [block])
            raise fail(f"composite blocks nest more than {MAX_CALL_DEPTH} calls deep (... {chain})", loc,
                       help="a block that calls itself never ends: give the recursion an `if` that stops it, "
                            "or write the levels as a loop")
        self.calls.append(block)
        try:
            yield
        finally:
            self.calls.pop()

    def count(self, n: int, what: str, loc: A.Loc) -> int:
        """A loop count or list length, refused before anything that size is built."""
        if n > MAX_ITEMS:
            raise fail(f"{what} is {n:,}, over the limit of {MAX_ITEMS:,}", loc,
                       help="check the value: a model's loops and lists are far shorter")
        return n

    def value(self, value, loc: A.Loc):
        """`value` if it is within the limits: finite numbers, bounded integers, lists and strings."""
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            if value.bit_length() > MAX_INT_BITS:
                raise fail(f"this integer has {value.bit_length():,} bits; integers have at most {MAX_INT_BITS}",
                           loc, help="check the arithmetic: no model size needs a number this large")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise fail(f"this gives {value}, not a finite number", loc, help="check the arithmetic")
        elif isinstance(value, complex):
            raise fail("this gives a complex number (a negative number to a fractional power?)", loc)
        elif isinstance(value, str):
            self.count(len(value), "this string's length", loc)
        elif isinstance(value, list):
            self.count(self._size(value, loc), "this list's size (nested elements included)", loc)
        return value

    def _size(self, value: list, loc: A.Loc) -> int:
        """Elements in `value`, nested lists included; the walk is paid for from the step budget."""
        size, todo = 0, [value]
        while todo:
            items = todo.pop()
            size += len(items)
            if size > MAX_ITEMS:
                break
            self.step(loc, len(items))
            todo.extend(v for v in items if isinstance(v, list))
        return size

    def before(self, op: str, left, right, loc: A.Loc) -> None:
        """Refuse `*` and `**` whose result would be over a limit, before computing it."""
        if op == "*" and isinstance(left, int | str | list) and isinstance(right, int | str | list):
            seq, n = (left, right) if isinstance(left, str | list) else (right, left)
            if isinstance(seq, str | list) and isinstance(n, int):
                self.count(len(seq) * max(n, 0), "the repeated sequence's length", loc)
        if op == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if right * math.log2(abs(left)) > MAX_INT_BITS:
                raise fail(f"{left} ** {right} is over the integer limit of {MAX_INT_BITS} bits", loc,
                           help="check the arithmetic: no model size needs a number this large")


__all__ = ["Budget", "MAX_STEPS", "MAX_NODES", "MAX_ITEMS", "MAX_INT_BITS", "MAX_CALL_DEPTH"]
