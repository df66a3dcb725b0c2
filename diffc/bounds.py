"""What a configuration number means, as the interval it must lie in (recipe fields carry one as metadata).

The recipe loader checks every number against its field's Bound, so a value outside its meaning is a located
error at load instead of NaN weights or a flipped gradient hours later.
"""
from __future__ import annotations

import attrs


@attrs.frozen
class Bound:
    """What a number means, as the interval it must lie in: every recipe number is also finite, every integer
    fits in 64 bits. `low_open` / `high_open` exclude the end; None leaves that side unbounded."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    meaning: str = ""

    def accepts(self, value) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        low, high = (repr(v) if isinstance(v, int) else f"{v:g}" for v in (self.low or 0, self.high or 0))
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {low}"
        return f"{'<' if self.high_open else '<='} {high}" if self.high is not None else "finite"


POSITIVE = Bound(0, low_open=True, meaning="positive")
NON_NEGATIVE = Bound(0, meaning="non-negative")
AT_LEAST_ONE = Bound(1, meaning="at least 1")
PROBABILITY = Bound(0, 1, meaning="a probability")
DROP_RATE = Bound(0, 1, high_open=True, meaning="a drop rate (1 would never show the condition)")
ADAM_BETA = Bound(0, 1, high_open=True, meaning="an Adam decay rate")
SEED = Bound(0, 2 ** 32 - 1)
PREVIEW_COUNT = Bound(1, 4096, meaning="a preview size")


def bound(bound: Bound, **extra):
    """Field metadata: the value (each element, for lists; the count, for durations) must satisfy `bound`."""
    return {"bound": bound, **extra}
