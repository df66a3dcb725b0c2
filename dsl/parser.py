"""Parse pass: text -> dsl.ast.File, with located, human-worded syntax errors and recovery.

Lark LALR with positions. On an unexpected token we record a diagnostic that names the expected
characters (not terminal names), try to insert a missing closer so parsing can go on, and otherwise
skip the token; all errors of a file are reported in one run.
"""
from __future__ import annotations

import functools
import math
import re
from importlib import resources

from lark import Lark, Token, Tree, UnexpectedCharacters, UnexpectedInput

from diffc.dsl.build_ast import AstBuilder, unquote
from diffc.errors import Diagnostic, UserError, attach_source

MAX_ERRORS = 12
MAX_NESTING = 150          # parse-tree levels: brackets, operator chains, nested blocks (keeps recursion bounded)
MAX_TOKENS = 100_000       # parsing costs ~0.1 ms a token; the largest shipped spec has about 1,100
MAX_NUMBER_CHARS = 320
ANCHORS = {"stmt", "param", "kwarg", "annotation", "overlay_item", "preset_def"}     # a number literal's characters (1e308 is the largest float)
FRIENDLY = {"NAME": "a name", "NUMBER": "a number", "INT": "an integer", "STRING": "a string",
            "$END": "end of file", "ARROW": "'->'", "CMP_OP": "a comparison", "ADD_OP": "'+' or '-'",
            "MUL_OP": "'*', '/', '//' or '%'", "STAR": "'*'"}
CLOSERS = ("RPAR", "RSQB", "RBRACE")


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("diffc.dsl").joinpath("grammar.lark").read_text()
    # cache=True keeps the LALR tables in a temp file keyed by the grammar's hash: ~10x faster start-up
    return Lark(grammar, parser="lalr", start="file", propagate_positions=True, maybe_placeholders=True,
                cache=True)


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


TOP_LEVEL = re.compile(r"^(model|block|import|recipe|default|@)\b|^@", re.M)


def parse(text: str, filename: str = "<spec>"):
    """Parse a whole file; raises UserError with every syntax error found.

    Recovery: a missing ')' ']' '}' is inserted where that lets parsing go on; any other error stops the
    current top-level item, and parsing resumes at the next line that starts a model, block or import.
    """
    _check_size(text, filename)
    diags: list[Diagnostic] = []
    comments = find_comments(text)
    lines = text.splitlines() or [""]
    tree, offset = None, 0
    while offset < len(text):
        chunk = "\n" * text.count("\n", 0, offset) + text[offset:]   # keep line numbers
        failed_at, parsed = _parse_chunk(chunk, filename, text, comments, lines, diags)
        if failed_at is None:
            if offset == 0 and not diags:
                tree = parsed
            break
        if len(diags) >= MAX_ERRORS:
            break
        nxt = TOP_LEVEL.search(text, _line_start(text, failed_at + 1))
        if nxt is None:
            break
        offset = nxt.start()
    if diags:
        attach_source(diags, {filename: text})
        raise UserError(_dedupe(diags))
    if tree is None:        # an empty (or whitespace-only) file
        tree = _parser().parse(text)
    _check_limits(tree, filename, text)
    return AstBuilder(filename, text, comments).build(tree)


def _check_size(text: str, filename: str) -> None:
    """Refuse a file with more than MAX_TOKENS tokens before parsing it (counted roughly, comments included)."""
    for count, match in enumerate(ROUGH_TOKEN.finditer(text), 1):
        if count > MAX_TOKENS:
            line = text.count("\n", 0, match.start()) + 1
            col = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
            d = Diagnostic(f"this spec has more than {MAX_TOKENS:,} tokens", filename, line, col, col + 1,
                           help="a model needs far fewer: write repeated structure as loops and composite blocks")
            attach_source([d], {filename: text})
            raise UserError(d)


ROUGH_TOKEN = re.compile(r"[\w.]+|\S")


def _check_limits(tree: Tree, filename: str, text: str) -> None:
    """Nesting depth and literal sizes, checked without recursion before the tree is transformed."""
    def error(message, line, col, end_col, help):
        d = Diagnostic(message, filename, line, col, end_col, help=help)
        attach_source([d], {filename: text})
        return UserError(d)

    stack = [(tree, 1, None)]
    while stack:
        node, depth, anchor = stack.pop()
        if anchor is None and node.data in ANCHORS:
            anchor = node                  # errors point at the outermost statement or argument
        if depth > MAX_NESTING:
            meta = (anchor or node).meta
            raise error(f"this nests too deeply: more than {MAX_NESTING} levels of brackets, operators or blocks",
                        meta.line, meta.column, meta.column + 1,
                        "split it into named steps (`a = ...` then `b = a + ...`) or use a loop")
        for child in node.children:
            if isinstance(child, Tree):
                stack.append((child, depth + 1, anchor))
            elif isinstance(child, Token):
                _check_token(child, error)


def _check_token(tok: Token, error) -> None:
    end = tok.column + len(tok) if tok.end_line == tok.line else tok.column + 1
    if tok.type in ("NUMBER", "INT"):
        if len(tok) > MAX_NUMBER_CHARS:
            raise error(f"this number has {len(tok):,} characters; numbers have at most {MAX_NUMBER_CHARS}",
                        tok.line, tok.column, tok.column + 1, "write large numbers as powers, e.g. 10 ** 6")
        if tok.type == "NUMBER" and not str(tok).isdigit() and math.isinf(float(tok)):
            raise error(f"{tok} is too large for a floating-point number (at most about 1.8e308)",
                        tok.line, tok.column, end, None)
    elif tok.type == "STRING":
        try:
            unquote(tok)
        except UnicodeDecodeError as exc:
            raise error(f"invalid escape in this string: {exc.reason}", tok.line, tok.column, end,
                        'escapes are \\\\, \\", \\n, \\t and \\uXXXX') from None


def _line_start(text: str, line: int) -> int:
    """Offset of the first character of 1-based `line` (len(text) past the end)."""
    pos = 0
    for _ in range(line - 1):
        pos = text.find("\n", pos)
        if pos < 0:
            return len(text)
        pos += 1
    return pos


def _parse_chunk(chunk, filename, text, comments, lines, diags):
    """Parse `chunk`, appending diagnostics: (line of an unrepairable error or None, tree or None)."""
    stopped: list[int] = []

    def end_of_file():
        return len(lines), len(lines[-1]) + 1

    def on_error(err: UnexpectedInput) -> bool:
        if isinstance(err, UnexpectedCharacters):
            diags.append(Diagnostic(f"unexpected character '{chunk[err.pos_in_stream]}'", filename,
                                    err.line, err.column, err.column + 1,
                                    help="diffspec uses names, numbers, strings, ( ) [ ] { } , = @ -> and operators"))
            stopped.append(err.line)
            return False
        tok = err.token
        accepted = err.interactive_parser.accepts() if err.interactive_parser else err.expected
        expected = describe_terminals(accepted)
        if tok.type == "$END":
            line, col = end_of_file()
            diags.append(Diagnostic(f"unexpected end of file: expected {expected}", filename, line, col, col + 1))
            stopped.append(line)
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
        if missing_closer and len(diags) < MAX_ERRORS:
            closer = {"RPAR": ")", "RSQB": "]", "RBRACE": "}"}[missing_closer]
            trial = err.interactive_parser.copy()
            try:
                trial.feed_token(Token(missing_closer, closer))
                trial.feed_token(tok)
            except UnexpectedInput:
                stopped.append(tok.line)
                return False
            err.interactive_parser.feed_token(Token(missing_closer, closer))
            err.interactive_parser.feed_token(tok)
            return True
        stopped.append(tok.line)
        return False

    try:
        tree = _parser().parse(chunk, on_error=on_error)
    except UnexpectedInput:
        tree = None
    return (stopped[0] if stopped else None), tree


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
