"""Parse pass: text -> dsl.ast.File, with located, human-worded syntax errors and recovery.

Lark LALR with positions. On an unexpected token we record a diagnostic that names the expected
characters (not terminal names), try to insert a missing closer so parsing can go on, and otherwise
skip the token; all errors of a file are reported in one run.
"""
from __future__ import annotations

import functools
from importlib import resources

from lark import Lark, Token, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from diffc.dsl.build_ast import AstBuilder
from diffc.errors import Diagnostic, UserError, attach_source

MAX_ERRORS = 12
FRIENDLY = {"NAME": "a name", "NUMBER": "a number", "INT": "an integer", "STRING": "a string",
            "$END": "end of file", "ARROW": "'->'", "CMP_OP": "a comparison", "ADD_OP": "'+' or '-'",
            "MUL_OP": "'*', '/', '//' or '%'", "STAR": "'*'"}
CLOSERS = ("RPAR", "RSQB", "RBRACE")


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("diffc.dsl").joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", start="file", propagate_positions=True, maybe_placeholders=True)


OPERATORS = {"ADD_OP", "MUL_OP", "CMP_OP", "QMARK", "__ANON_0", "DOUBLESTAR", "AND", "OR", "IN", "DOT",
             "LSQB", "LPAR", "ARROW", "AS", "STAR", "SLASH", "MINUS", "PLUS"}
STATEMENT_STARTS = {"AT", "FOR", "IF", "INPUT", "REPEAT", "RETURN"}


def describe_terminals(names) -> str:
    """The expected terminals in characters: closers first, operators only when nothing else fits."""
    names = set(names)
    structural = names & {"RPAR", "RSQB", "RBRACE", "COMMA"}
    if structural:
        names = structural
    elif names - OPERATORS:
        names = names - OPERATORS
    words = []
    if {"NAME", "NUMBER", "STRING", "TRUE"} <= names:
        names = names - {"NAME", "NUMBER", "STRING", "TRUE", "FALSE", "NONE", "NOT", "MINUS", "LPAR", "LSQB"}
        words.append("an expression")
    if len(names & STATEMENT_STARTS) >= 3:
        names = names - STATEMENT_STARTS - {"NAME"}
        words.append("a statement")
    patterns = {t.name: t.pattern for t in _parser().terminals}
    for name in sorted(names):
        if name in FRIENDLY:
            words.append(FRIENDLY[name])
        elif name in patterns and patterns[name].type == "str":
            words.append(f"'{patterns[name].value}'")
        else:
            words.append(name.lower())
    words = sorted(set(words), key=lambda w: (w[0] != "'", w))
    if len(words) > 6:
        words = words[:6] + ["..."]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def previous_token_end(text: str, pos: int, comments) -> tuple[int, int] | None:
    """(line, col) just after the last token before `pos`, skipping whitespace and comments."""
    starts = {}
    offset = 0
    for lineno, line in enumerate(text.splitlines(keepends=True), 1):
        starts[lineno] = offset
        offset += len(line)
    comment_at = {line: starts[line] + col - 1 for line, col, _ in comments}
    i = pos - 1
    while i >= 0:
        line = text.count("\n", 0, i) + 1
        if line in comment_at and i >= comment_at[line]:
            i = comment_at[line] - 1
            continue
        if not text[i].isspace():
            return line, i - starts[line] + 2
        i -= 1
    return None


def _token_text(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    return f"'{tok}'"


def parse(text: str, filename: str = "<spec>"):
    """Parse a whole file; raises UserError with every syntax error found."""
    diags: list[Diagnostic] = []
    comments = find_comments(text)
    lines = text.splitlines() or [""]

    def end_of_file():
        return len(lines), len(lines[-1]) + 1

    def on_error(err: UnexpectedInput) -> bool:
        if len(diags) >= MAX_ERRORS:
            return False
        if diags and getattr(err, "line", None) == diags[-1].line and not isinstance(err, UnexpectedCharacters):
            return getattr(err, "token", None) is None or err.token.type != "$END"   # one error per line
        if isinstance(err, UnexpectedCharacters):
            diags.append(Diagnostic(f"unexpected character '{text[err.pos_in_stream]}'", filename,
                                    err.line, err.column, err.column + 1,
                                    help="diffspec uses names, numbers, strings, and ( ) [ ] { } , = @ -> operators"))
            return True
        assert isinstance(err, UnexpectedToken)
        tok = err.token
        accepted = err.interactive_parser.accepts() if err.interactive_parser else err.expected
        expected = describe_terminals(accepted)
        if tok.type == "$END":
            line, col = end_of_file()
            diags.append(Diagnostic(f"unexpected end of file: expected {expected}", filename, line, col, col + 1))
            return False
        missing_closer = next((c for c in CLOSERS if c in accepted), None)
        prev = previous_token_end(text, tok.start_pos, comments)
        if missing_closer and prev is not None and prev[0] < tok.line:
            # The previous token ends an earlier line: point just after it, where the closer is missing.
            diags.append(Diagnostic(f"expected {expected} at the end of this line, before {_token_text(tok)}",
                                    filename, prev[0], prev[1], prev[1] + 1))
        else:
            diags.append(Diagnostic(f"unexpected {_token_text(tok)}: expected {expected}", filename,
                                    tok.line, tok.column, tok.column + max(1, len(tok))))
        if missing_closer:
            closer = {"RPAR": ")", "RSQB": "]", "RBRACE": "}"}[missing_closer]
            trial = err.interactive_parser.copy()
            try:
                trial.feed_token(Token(missing_closer, closer))
                trial.feed_token(tok)
            except UnexpectedInput:
                return True                     # cannot repair: skip the token
            err.interactive_parser.feed_token(Token(missing_closer, closer))
            err.interactive_parser.feed_token(tok)
        return True

    parser = _parser()
    try:
        tree = parser.parse(text, on_error=on_error)
    except UnexpectedEOF:
        line, col = end_of_file()
        diags.append(Diagnostic("unexpected end of file", filename, line, col, col + 1))
        tree = None
    except UnexpectedInput as err:
        if not diags:
            line, col = (err.line, err.column) if getattr(err, "line", -1) not in (-1, None) else end_of_file()
            diags.append(Diagnostic(f"syntax error: {str(err).splitlines()[0]}", filename, line, col, col + 1))
        tree = None
    if diags:
        attach_source(diags, {filename: text})
        raise UserError(_dedupe(diags))
    return AstBuilder(filename, text, comments).build(tree)


def find_comments(text: str) -> list[tuple[int, int, str]]:
    """(line, col, text) of every `#` comment; strings never span lines and escape quotes with `\\`."""
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        in_string = escaped = False
        for col, ch in enumerate(line, 1):
            if in_string:
                escaped = not escaped and ch == "\\"
                if ch == '"' and not escaped:
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "#":
                found.append((lineno, col, line[col - 1:].rstrip()))
                break
    return found


def _dedupe(diags):
    seen, out = set(), []
    for d in diags:
        key = (d.line, d.col)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out
