"""The .diffspec syntax tree: plain attrs records carrying source locations (1-based line/col)."""
from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class Loc:
    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def single_line_end(self) -> int:
        return self.end_col if self.end_line == self.line else self.col + 1


# ---- expressions -------------------------------------------------------------------------------
@attrs.define
class Expr:
    loc: Loc


@attrs.define
class Num(Expr):
    value: int | float
    text: str


@attrs.define
class Str(Expr):
    value: str


@attrs.define
class Const(Expr):
    value: Any                      # true / false / none


@attrs.define
class Name(Expr):
    id: str


@attrs.define
class ListExpr(Expr):
    items: list


@attrs.define
class Keyword:
    name: str
    value: Expr
    loc: Loc                        # location of the keyword's name


@attrs.define
class Call(Expr):
    func: str
    func_loc: Loc
    args: list
    kwargs: list                    # list[Keyword]


@attrs.define
class Index(Expr):
    obj: Expr
    index: Expr


@attrs.define
class Attr(Expr):
    obj: Expr
    name: str


@attrs.define
class BinOp(Expr):
    op: str                         # + - * / // % ** == != < <= > >= in and or
    left: Expr
    right: Expr


@attrs.define
class Unary(Expr):
    op: str                         # - not
    operand: Expr


@attrs.define
class Cond(Expr):
    test: Expr
    then: Expr
    other: Expr


# ---- annotations -------------------------------------------------------------------------------
@attrs.define
class AnnoArg:
    kind: str                       # "pos" | "link" | "kw"
    value: Expr
    loc: Loc
    name: str | None = None         # for "kw"
    target: Expr | None = None      # for "link": value -> target


@attrs.define
class Annotation:
    name: str
    args: list                      # list[AnnoArg]
    loc: Loc                        # the whole annotation
    name_loc: Loc                   # just the name after '@'
    has_parens: bool = False


# ---- statements --------------------------------------------------------------------------------
@attrs.define
class Stmt:
    loc: Loc
    annotations: list


@attrs.define
class Input(Stmt):
    name: str
    name_loc: Loc
    kind: str
    kind_loc: Loc
    args: list                      # positional Expr
    kwargs: list                    # list[Keyword]
    has_brackets: bool = False


@attrs.define
class Assign(Stmt):
    targets: list                   # list[str]
    value: Expr
    node_name: Expr | None = None   # `as "enc.{r}x{r}_conv"` (Str) or a dotted Name path (Str too)
    push: str | None = None         # `-> skips`
    push_loc: Loc | None = None


@attrs.define
class Repeat(Stmt):
    label: str | None
    count: Expr
    var: str | None
    body: list


@attrs.define
class For(Stmt):
    label: str | None
    var: str
    var2: str | None                # `for i, m in enumerate(xs)`-style pair
    iterable: Expr
    body: list


@attrs.define
class Region(Stmt):
    name: str
    name_loc: Loc
    body: list


@attrs.define
class If(Stmt):
    test: Expr
    body: list
    orelse: list                    # statements, or [If] for `else if`


@attrs.define
class Return(Stmt):
    values: list


# ---- definitions -------------------------------------------------------------------------------
@attrs.define
class Param:
    name: str
    type: str | None
    default: Expr | None
    loc: Loc


@attrs.define
class BlockDef:
    kind: str                       # "model" | "block"
    name: str
    name_loc: Loc
    params: list
    annotations: list
    body: list
    loc: Loc


@attrs.frozen
class PathSlice:
    """`blocks[0:4]`, `blocks[::2]`: the iterations of a repeat or for loop a slice selects (0-based)."""
    start: int | None
    stop: int | None
    step: int | None

    def selects(self, index: int) -> bool:
        start, step = self.start or 0, self.step or 1
        return index >= start and (self.stop is None or index < self.stop) and (index - start) % step == 0

    def __str__(self) -> str:
        text = ("" if self.start is None else str(self.start)) + ":" + ("" if self.stop is None else str(self.stop))
        return text + (f":{self.step}" if self.step is not None else "")


@attrs.define
class OverlayItem:
    annotations: list
    path: list                      # ["blocks"], ["blocks", 7], ["blocks", "*"], ["blocks", PathSlice], ["model"]
    path_loc: Loc
    loc: Loc


@attrs.define
class Preset:
    name: str
    name_loc: Loc
    base: str
    base_loc: Loc
    kwargs: list                    # list[Keyword]
    overlay: list | None            # list[OverlayItem] or None (no `with`)
    loc: Loc


@attrs.define
class Import:
    path: str
    loc: Loc


@attrs.define
class File:
    path: str
    version: int | None
    items: list                     # Import | RecipeRef | DefaultModel | BlockDef | Preset
    comments: list                  # list[(line, col, text)]
    source: str


@attrs.define
class RecipeRef:
    path: str
    loc: Loc


@attrs.define
class DefaultModel:
    name: str
    loc: Loc
