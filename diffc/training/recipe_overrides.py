"""Recipe fields set on the command line: `diffc train SPEC optimizer.lr=3e-4 batch=128 sample.every=8Ki`.

Each `key.sub=value` is merged into the recipe's located YAML data before validation, so an override is checked
by the same code as the file, and its errors point into the override itself (`<override 2: optimizer.lr=abc>:1:14`).
Values are read as YAML (numbers, `null`, `[0.9, 0.99]`, `{lr: 1e-4}`, `8Ki`); a mapping merges into the section.
"""
from __future__ import annotations

import yaml

from diffc.errors import Diagnostic

MARKS = "__marks__"


def override_name(index: int, text: str) -> str:
    """The pseudo file name of the index-th override (1-based) in diagnostics."""
    return f"<override {index}: {text}>"


def is_override_mark(mark) -> bool:
    return mark is not None and str(getattr(mark, "name", "")).startswith("<override ")


def apply_overrides(data: dict, overrides, build, errors: list[Diagnostic]) -> dict[str, str]:
    """Merge `overrides` into `data` (plain YAML data with MARKS, built by `build(node)`); bad syntax goes to
    `errors`. Returns {pseudo file name: override text} for showing the source line of an error."""
    sources = {}
    for index, text in enumerate(overrides, 1):
        name = override_name(index, text)
        sources[name] = text
        key, sep, value = text.partition("=")
        parts = key.split(".")
        if not sep or not all(part.strip() == part and part for part in parts):
            errors.append(Diagnostic(f"cannot read override '{text}': expected key.sub=value", file=name, line=1,
                                     col=1, end_col=len(text) + 1,
                                     help="e.g. optimizer.lr=3e-4, batch=128, sample.every=8Ki, ema.sigma_rel=[0.05,0.1]"))
            continue
        try:                          # padded so that marks give the value's column within the override
            node = yaml.compose(" " * (len(key) + 1) + value)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            errors.append(Diagnostic(f"invalid YAML value in override: {getattr(exc, 'problem', exc)}", file=name,
                                     line=1, col=(mark.column + 1) if mark else len(key) + 2))
            continue
        _rename_marks(node, name)
        value_mark = node.start_mark if node is not None else _mark(name, len(key) + 1)
        value_end = node.end_mark if node is not None else value_mark
        target, column = data, 0
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):        # a section absent, null or a scalar: a mapping now
                target[part] = {}
                target.setdefault(MARKS, {})[part] = (_mark(name, column), _mark(name, column), None)
            target, column = target[part], column + len(part) + 1
        last = parts[-1]
        new = build(node) if node is not None else None
        if isinstance(new, dict) and isinstance(target.get(last), dict):
            _merge(target[last], new)
        else:
            target[last] = new
        target.setdefault(MARKS, {})[last] = (_mark(name, column), value_mark, value_end)
    return sources


def _merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if key == MARKS:
            into.setdefault(MARKS, {}).update(value)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _mark(name: str, column: int):
    return yaml.Mark(name, column, 0, column, None, None)


def _rename_marks(node, name: str) -> None:
    """Point every mark of a composed value node at the override's pseudo file."""
    stack = [node] if node is not None else []
    while stack:
        item = stack.pop()
        item.start_mark.name = item.end_mark.name = name
        if isinstance(item, yaml.MappingNode):
            stack.extend(n for pair in item.value for n in pair)
        elif isinstance(item, yaml.SequenceNode):
            stack.extend(item.value)
