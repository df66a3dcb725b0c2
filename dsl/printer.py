"""Canonical text of a .diffspec syntax tree (`diffc fmt`).

The canonical form:
- 2-space indentation; one statement or overlay item per line; a body's `{` ends its header line and its `}`
  stands alone (`} else {` / `} else if c {` chain an if); `else { if ... }` prints as `else if ...`.
- `name = value` in keyword arguments, parameter defaults and annotation keywords; `name: type` in parameters and
  inputs; `, ` between arguments, positional arguments first; `->`, never `→`.
- Parentheses only where the grammar's precedence needs them (`a - (b - c)`, `(a + b) * c`, `(-x) ** 2`).
- Numbers keep their source text (`1e-4`); strings are re-quoted with `"` and minimal escapes; node names
  (`as ...`) are always quoted strings.
- Annotations on the line of what they annotate (`@drop(0.1) input y: label[classes]`, `@route(0.8, 4) blocks`),
  except that those of a `model` / `block` definition stand one per line above it; `@mp` keeps or drops its `()`
  as written. A preset with no arguments prints without `()`: `model X_DTR = X with {`.
- A line longer than 100 columns with an argument list (definition parameters, preset arguments, input arguments,
  or the call an assignment or return makes) wraps greedily, continuation lines aligned after the `(` or `[`.
- Blank lines: one between top-level items, except that consecutive one-line items (version, import, recipe,
  default, presets without `with`) stay grouped unless the source separates them; inside a body, one blank line
  where the source has one or more, never right after `{` or before `}`.
- Every comment is kept: own-line comments before what follows them, at its indentation (at the end of a body:
  before its `}`); a same-line comment stays at the end of its line, two spaces after the code. Comments inside
  a statement that prints on fewer lines move above it, except the last same-line one, which stays at its end.
"""
from __future__ import annotations

import re

import attrs

from diffc.dsl import ast as A
from diffc.dsl.parser import _parser, parse
from diffc.errors import UserError

WIDTH = 100
INDENT = "  "

# Precedence levels of the grammar's expression rules, loosest first.
TERNARY, OR, AND, NOT, CMP, SUM, PRODUCT, UNARY, POWER, POSTFIX = range(10)
# operator -> (its level, the least level its left operand may have unparenthesized, same for the right)
BINARY = {"or": (OR, OR, AND), "and": (AND, AND, NOT), "**": (POWER, POSTFIX, UNARY),
          **{op: (CMP, SUM, SUM) for op in ("==", "!=", "<", "<=", ">", ">=", "in")},
          **{op: (SUM, SUM, PRODUCT) for op in ("+", "-")},
          **{op: (PRODUCT, PRODUCT, UNARY) for op in ("*", "/", "//", "%")}}
ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def format_text(text: str, filename: str = "<spec>") -> str:
    """Parse and print canonically; refuses (UserError) if the result would not read back as the same spec."""
    tree = parse(text, filename)
    out = format_file(tree)
    again = parse(out, filename)
    if syntax_key(again) != syntax_key(tree) or sorted(c[2] for c in again.comments) != sorted(
            c[2] for c in tree.comments):
        raise UserError(f"internal error: the canonical form of {filename} would change its meaning or comments; "
                        "nothing was changed", help="please report this diffc bug with the spec")
    return out


def format_file(tree: A.File) -> str:
    return Printer(tree).print_file()


def syntax_key(node):
    """A location-free, comparable form of a syntax tree (comments and source text left out)."""
    if isinstance(node, A.File):
        return ("File", node.version, syntax_key(node.items))
    if isinstance(node, list):
        return [syntax_key(x) for x in node]
    if attrs.has(type(node)):
        return (type(node).__name__, *(syntax_key(getattr(node, f.name)) for f in attrs.fields(type(node))
                                       if not isinstance(getattr(node, f.name), A.Loc)))
    return node


# ---- expressions -------------------------------------------------------------------------------
def expr(e: A.Expr, least: int = TERNARY) -> str:
    """`e` as text, parenthesized when its level is looser than `least`."""
    text, level = _expr(e)
    return f"({text})" if level < least else text


def _expr(e: A.Expr) -> tuple[str, int]:
    if isinstance(e, A.Num):
        return e.text, POSTFIX
    if isinstance(e, A.Str):
        return quote(e.value), POSTFIX
    if isinstance(e, A.Const):
        return {True: "true", False: "false", None: "none"}[e.value], POSTFIX
    if isinstance(e, A.Name):
        return e.id, POSTFIX
    if isinstance(e, A.ListExpr):
        return f"[{', '.join(expr(x) for x in e.items)}]", POSTFIX
    if isinstance(e, A.Call):
        return f"{e.func}({', '.join(arguments(e.args, e.kwargs))})", POSTFIX
    if isinstance(e, A.Index):
        return f"{expr(e.obj, POSTFIX)}[{expr(e.index)}]", POSTFIX
    if isinstance(e, A.Attr):
        return f"{expr(e.obj, POSTFIX)}.{e.name}", POSTFIX
    if isinstance(e, A.BinOp):
        level, left, right = BINARY[e.op]
        return f"{expr(e.left, left)} {e.op} {expr(e.right, right)}", level
    if isinstance(e, A.Unary):
        if e.op == "not":
            return f"not {expr(e.operand, NOT)}", NOT
        return f"-{expr(e.operand, UNARY)}", UNARY
    if isinstance(e, A.Cond):
        return f"{expr(e.test, OR)} ? {expr(e.then)} : {expr(e.other)}", TERNARY
    raise TypeError(f"cannot print {type(e).__name__}")


def arguments(args: list, kwargs: list) -> list[str]:
    return [expr(a) for a in args] + [f"{k.name} = {expr(k.value)}" for k in kwargs]


def quote(value: str) -> str:
    """A string literal that the parser reads back as `value` (it decodes UTF-8 bytes with unicode_escape)."""
    def run(match: re.Match) -> str:      # non-ASCII source text reaches `value` as UTF-8 bytes read as Latin-1
        try:
            return match.group().encode("latin-1").decode("utf-8")
        except UnicodeError:              # bytes the source wrote as escapes
            return "".join(f"\\x{ord(c):02x}" for c in match.group())

    def char(c: str) -> str:
        code = ord(c)
        if code < 0x20 or code == 0x7f:
            return ESCAPES.get(c, f"\\x{code:02x}")
        if code > 0xff:                   # written as \u escapes (raw text arrives as bytes)
            return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
        return ESCAPES.get(c, c)

    return '"' + re.sub(r"[\x80-\xff]+", run, "".join(char(c) for c in value)) + '"'


def annotation(a: A.Annotation) -> str:
    args = []
    for arg in a.args:
        if arg.kind == "kw":
            args.append(f"{arg.name} = {expr(arg.value)}")
        elif arg.kind == "link":
            args.append(f"{expr(arg.value)} -> {expr(arg.target)}")
        else:
            args.append(expr(arg.value))
    return f"@{a.name}({', '.join(args)})" if args or a.has_parens else f"@{a.name}"


def annotations(annos: list) -> str:
    return "".join(annotation(a) + " " for a in annos)


def wrap(width: int, head: str, items: list[str], tail: str) -> list[str]:
    """`head item, item tail` on one line if it fits in `width`, else filled greedily, aligned after `head`."""
    one = head + ", ".join(items) + tail
    if len(one) <= width or len(items) < 2:
        return [one]
    lines = [head + items[0] + ","]
    for i, item in enumerate(items[1:], 1):
        piece = item + ("," if i < len(items) - 1 else tail)
        if len(lines[-1]) + 1 + len(piece) > width:
            lines.append(" " * len(head) + piece)
        else:
            lines[-1] += " " + piece
    return lines


# ---- statements and comments -------------------------------------------------------------------
class Printer:
    def __init__(self, tree: A.File):
        self.tree = tree
        self.src = tree.source.splitlines()
        self.comments = sorted(tree.comments)            # not yet printed, in source order
        self.out: list[str] = []
        self.last_line = 0                               # the last source line printed
        self.blank_due = False                           # a blank line must precede the next output
        self.after_open = True                           # nothing printed since the last `{` (or file start)
        self.braces = self._brace_pairs(tree.source)     # ((line, col) of each `{`, of its `}`), in order

    @staticmethod
    def _brace_pairs(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        pairs, stack = [], []
        for tok in _parser().lex(source):
            if tok.type == "LBRACE":
                stack.append(len(pairs))
                pairs.append([(tok.line, tok.column), None])
            elif tok.type == "RBRACE":
                pairs[stack.pop()][1] = (tok.line, tok.column)
        return [tuple(p) for p in pairs]

    def body_after(self, position: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """(line, col) of the `{` and `}` of the first body that opens at or after (line, col) `position`."""
        return next(pair for pair in self.braces if pair[0] >= position)

    # -- output --
    def print_file(self) -> str:
        tree = self.tree
        compact_before = True           # one-line items stay grouped; the version line never forces a blank
        if tree.version is not None:
            line = self._first_code_line()
            self.code(0, [f"diffspec {tree.version}"], line, line)
        for i, item in enumerate(tree.items):
            compact = isinstance(item, (A.Import, A.RecipeRef, A.DefaultModel)) or (
                isinstance(item, A.Preset) and item.overlay is None)
            self.blank_due = i > 0 and not (compact and compact_before)
            self.item(item)
            compact_before = compact
        self.leading(0, len(self.src) + 1)
        return "\n".join(self.out) + "\n" if self.out else ""

    def emit(self, depth: int, lines: list[str]) -> None:
        self.out.extend(INDENT * depth + line for line in lines)
        self.after_open = False

    def gap(self, line: int) -> None:
        """Before printing source `line`: a blank line if one is due or the source has one since the last line."""
        blank = any(not s.strip() for s in self.src[self.last_line:line - 1])
        if (self.blank_due or blank) and not self.after_open:
            self.out.append("")
        self.blank_due = False

    def take(self, through: int) -> list:
        """Unprinted comments on source lines up to `through`."""
        n = next((i for i, c in enumerate(self.comments) if c[0] > through), len(self.comments))
        taken, self.comments = self.comments[:n], self.comments[n:]
        return taken

    def own_line(self, comment) -> bool:
        line, col, _ = comment
        return not self.src[line - 1][:col - 1].strip()

    def leading(self, depth: int, before: int) -> None:
        """Comments before source line `before`, each on its own line."""
        for line, _, text in self.take(before - 1):
            self.gap(line)
            self.emit(depth, [text])
            self.last_line = line

    def code(self, depth: int, lines: list[str], first: int, last: int) -> None:
        """Print `lines`, which come from source lines first..last, with the comments up to there."""
        closing = lines[0].startswith("}")
        self.leading(depth, first)
        if not closing:                                  # never a blank line before `}`
            self.gap(first)
        inside = self.take(last)
        trailing = [c for c in inside if not self.own_line(c)][-1:]
        self.emit(depth + closing, [c[2] for c in inside if c not in trailing])   # `} else {`: end of the body
        if trailing:
            lines = lines[:-1] + [f"{lines[-1]}  {trailing[0][2]}"]
        self.emit(depth, lines)
        self.last_line = max(self.last_line, last)

    def close(self, depth: int, line: int) -> None:
        """The `}` on source `line`, after the comments that end the body."""
        self.leading(depth + 1, line)
        self.code(depth, ["}"], line, line)

    # -- items --
    def item(self, item) -> None:
        loc = item.loc
        if isinstance(item, A.Import):
            self.code(0, [f"import {quote(item.path)}"], loc.line, loc.end_line)
        elif isinstance(item, A.RecipeRef):
            self.code(0, [f"recipe {quote(item.path)}"], loc.line, loc.end_line)
        elif isinstance(item, A.DefaultModel):
            self.code(0, [f"default {item.name}"], loc.line, loc.end_line)
        elif isinstance(item, A.BlockDef):
            params = [p.name + (f": {p.type}" if p.type else "")
                      + (f" = {expr(p.default)}" if p.default is not None else "") for p in item.params]
            head = [annotation(a) for a in item.annotations]
            head += wrap(WIDTH, f"{item.kind} {item.name}(", params, ") {")
            self.compound(0, head, loc, item.body, self.stmt)
        elif item.overlay is None:
            self.code(0, self.preset_head(item, ""), loc.line, loc.end_line)
        else:
            self.compound(0, self.preset_head(item, " with {"), loc, item.overlay, self.overlay_item)

    @staticmethod
    def preset_head(preset: A.Preset, tail: str) -> list[str]:
        head = f"model {preset.name} = {preset.base}"
        if not preset.kwargs:
            return [head + tail]
        return wrap(WIDTH, head + "(", arguments([], preset.kwargs), ")" + tail)

    def overlay_item(self, depth: int, item: A.OverlayItem) -> None:
        path = item.path[0] + "".join(f".{p}" if isinstance(p, str) and p != "*" else f"[{p}]" for p in item.path[1:])
        self.code(depth, [annotations(item.annotations) + path], item.loc.line, item.loc.end_line)

    def compound(self, depth: int, head: list[str], loc: A.Loc, body: list, print_one) -> None:
        """A header ending in `{`, the body's entries one deeper, and the closing `}`."""
        (open_line, _), (close_line, _) = self.body_after((loc.line, loc.col))
        self.code(depth, head, loc.line, open_line)
        self.entries(depth + 1, body, print_one)
        self.close(depth, close_line)

    def entries(self, depth: int, body: list, print_one) -> None:
        self.after_open = True
        for entry in body:
            print_one(depth, entry)

    def stmt(self, depth: int, s: A.Stmt) -> None:
        width, pre = WIDTH - len(INDENT) * depth, annotations(s.annotations)
        if isinstance(s, A.Input):
            items = arguments(s.args, s.kwargs)
            lines = wrap(width, f"{pre}input {s.name}: {s.kind}[", items, "]") if items or s.has_brackets \
                else [f"{pre}input {s.name}: {s.kind}"]
        elif isinstance(s, A.Assign):
            tail = (f" as {quote(s.node_name.value)}" if s.node_name is not None else "") \
                + (f" -> {s.push}" if s.push else "")
            lines = call_lines(width, f"{pre}{', '.join(s.targets)} = ", s.value, tail)
        elif isinstance(s, A.Return):
            lines = call_lines(width, f"{pre}return ", s.values[0], "") if len(s.values) == 1 \
                else [f"{pre}return {', '.join(expr(v) for v in s.values)}"]
        elif isinstance(s, A.If):
            return self.if_chain(depth, s, pre, s.loc.line)
        else:
            label = f"{s.label}: " if getattr(s, "label", None) else ""
            if isinstance(s, A.Repeat):
                head = f"{label}repeat {expr(s.count)}" + (f" as {s.var}" if s.var else "")
            elif isinstance(s, A.For):
                head = f"{label}for {s.var}" + (f", {s.var2}" if s.var2 else "") + f" in {expr(s.iterable)}"
            else:
                head = s.name
            return self.compound(depth, [f"{pre}{head} {{"], s.loc, s.body, self.stmt)
        self.code(depth, lines, s.loc.line, s.loc.end_line)

    def if_chain(self, depth: int, s: A.If, pre: str, first: int) -> None:
        """`if` and its else branches; `first` is the source line the header starts on (a `}` for `else if`)."""
        (open_line, _), then_close = self.body_after((s.loc.line, s.loc.col))
        self.code(depth, [f"{pre}if {expr(s.test)} {{"], first, open_line)
        self.entries(depth + 1, s.body, self.stmt)
        if not s.orelse:
            return self.close(depth, then_close[0])
        self.leading(depth + 1, then_close[0])
        chained = s.orelse[0]
        if len(s.orelse) == 1 and isinstance(chained, A.If) and not chained.annotations:
            return self.if_chain(depth, chained, "} else ", then_close[0])
        (else_open, _), (else_close, _) = self.body_after(then_close)
        self.code(depth, ["} else {"], then_close[0], else_open)
        self.entries(depth + 1, s.orelse, self.stmt)
        self.close(depth, else_close)

    def _first_code_line(self) -> int:
        comment_col = {line: col for line, col, _ in self.tree.comments}
        return next(i for i, text in enumerate(self.src, 1) if text[:comment_col.get(i, len(text) + 1) - 1].strip())


def call_lines(width: int, head: str, value: A.Expr, tail: str) -> list[str]:
    """`head value tail`, wrapping the arguments if `value` is a call."""
    if isinstance(value, A.Call):
        return wrap(width, f"{head}{value.func}(", arguments(value.args, value.kwargs), ")" + tail)
    return [head + expr(value) + tail]
