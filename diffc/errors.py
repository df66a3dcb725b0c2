"""User-facing diagnostics: located errors rendered as `file:line:col` with a caret, or as JSON.

Every mistake a user can make (spec, recipe, data, checkpoint, CLI flag) becomes a `UserError` carrying one
or more `Diagnostic`s. The CLI prints them and exits with code 2, never a traceback.
"""
from __future__ import annotations

import difflib
import json
import sys
from typing import Iterable, Sequence

import attrs

MAX_SHOWN = 160      # characters of a source line shown under a diagnostic


@attrs.define
class Diagnostic:
    message: str
    file: str | None = None
    line: int | None = None          # 1-based
    col: int | None = None           # 1-based
    end_col: int | None = None       # exclusive, same line
    help: str | None = None
    notes: list[str] = attrs.Factory(list)
    severity: str = "error"
    source_line: str | None = None   # filled in by `attach_source`

    def location(self) -> str:
        parts = [self.file or "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def render(self) -> str:
        where = f"{self.location()}: " if self.file or self.line is not None else ""
        out = [f"{where}{self.severity}: {self.message}"]
        if self.source_line is not None and self.line is not None:
            gutter = str(self.line)
            pad = " " * len(gutter)
            out.append(f"{pad} |")
            line, col = self.source_line.rstrip(), self.col or 1
            if len(line) > MAX_SHOWN:          # a very long line: show a window around the column
                start = max(0, col - 1 - MAX_SHOWN // 3)
                line = ("..." if start else "") + line[start:start + MAX_SHOWN] + "..."
                col = col - start + (3 if start else 0)
            out.append(f"{gutter} | {line}")
            if self.col is not None:
                width = min(max(1, (self.end_col or self.col + 1) - self.col), MAX_SHOWN)
                out.append(f"{pad} | {' ' * (col - 1)}{'^' * width}")
        for note in self.notes:
            out.append(f"{' ' * len(str(self.line or ''))} = note: {note}")
        if self.help:
            out.append(f"{' ' * len(str(self.line or ''))} = help: {self.help}")
        return "\n".join(out)

    def to_json(self) -> dict:
        return {
            "severity": self.severity, "message": self.message, "file": self.file, "line": self.line,
            "col": self.col, "end_col": self.end_col, "help": self.help, "notes": self.notes,
        }


class UserError(Exception):
    """A mistake in user input. Carries diagnostics; the CLI renders them and exits with code 2."""

    def __init__(self, diagnostics: Diagnostic | str | Sequence[Diagnostic], **kwargs):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics, **kwargs)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))

    def render(self, fmt: str = "text") -> str:
        if fmt == "json":
            return json.dumps({"diagnostics": [d.to_json() for d in self.diagnostics]}, indent=2)
        return "\n\n".join(d.render() for d in self.diagnostics)


class SpecError(UserError):
    """A mistake in a .diffspec file, located at a source span."""


def fail(message: str, loc, help: str | None = None, notes=()) -> SpecError:
    """SpecError at `loc` (a diffc.dsl.ast.Loc: file, line, col and `single_line_end()`), ready to raise."""
    return SpecError(Diagnostic(message, loc.file, loc.line, loc.col, loc.single_line_end(), help=help,
                                notes=list(notes)))


def note(message: str) -> None:
    """Tell the user something they should know that is not an error (on stderr, never on stdout)."""
    print(f"note: {message}", file=sys.stderr)


def attach_source(diags: Iterable[Diagnostic], sources: dict[str, str]) -> None:
    """Fill `source_line` from the text of each diagnostic's file."""
    for d in diags:
        text = sources.get(d.file or "")
        if text is not None and d.line is not None and d.source_line is None:
            lines = text.splitlines()
            if 1 <= d.line <= len(lines):
                d.source_line = lines[d.line - 1]


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """`help:` text naming the closest candidate (difflib ranking), or None."""
    cands = sorted(set(candidates))
    close = difflib.get_close_matches(word, cands, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in cands}
        close = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)]
    return f"did you mean '{close[0]}'?" if close else None


class Interrupted(Exception):
    """A run stopped by a signal after saving what it could; the CLI prints the message and exits 128 + signum
    (130 for SIGINT / Ctrl-C, 143 for SIGTERM), the shell convention."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


def first_line(exc: BaseException) -> str:
    """`Kind: first line of the message` (at most 200 characters), to say why a file could not be read."""
    text = str(exc).strip()
    return type(exc).__name__ + (f": {text.splitlines()[0][:200]}" if text else "")
