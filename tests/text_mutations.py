"""Token-level mutations of a text file, shared by the spec and recipe fuzz tests.

An op is (kind, a, b): a picks the token / number / line / byte, b the replacement. Kinds: delete, duplicate,
blow_up (a number becomes one of `blow_ups`), insert (one of `snippets` before a token), line (duplicate or
drop a line), bomb (prepend `prefix`), flip (set a byte, after the text edits)."""
import re


def mutate(text: str, ops, *, token: re.Pattern, number: str, blow_ups: list, snippets: list,
           prefix: str = "") -> bytes:
    for op, a, b in ops:
        tokens = [m.span() for m in token.finditer(text)]
        if op == "bomb":
            text = prefix + text
            continue
        if not tokens:
            break
        start, end = tokens[a % len(tokens)]
        if op == "delete":
            text = text[:start] + text[end:]
        elif op == "duplicate":
            text = text[:end] + " " + text[start:end] + text[end:]
        elif op == "blow_up":
            numbers = [m.span() for m in re.finditer(number, text)]
            if numbers:
                s, e = numbers[a % len(numbers)]
                text = text[:s] + blow_ups[b % len(blow_ups)] + text[e:]
        elif op == "insert":
            text = text[:start] + snippets[b % len(snippets)] + text[start:]
        elif op == "line":
            lines = text.splitlines(keepends=True)
            i = a % len(lines)
            lines.insert(i, lines[i]) if b % 2 else lines.pop(i)
            text = "".join(lines)
    data = bytearray(text.encode())
    for op, a, b in ops:
        if op == "flip" and data:
            data[a % len(data)] = b % 256
    return bytes(data)
