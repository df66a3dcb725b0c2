"""Load a recipe YAML into `Recipe` with cattrs; every mistake is a UserError at the key's file:line:col."""
from __future__ import annotations

import math
from pathlib import Path

import attrs
import cattrs
import yaml

from diffc.errors import Diagnostic, UserError, attach_source, did_you_mean
from diffc.text import read_text
from diffc.training.recipe import DEFAULT_RECIPE_YAML, Duration, Recipe
from diffc.training.recipe_checks import cross_checks, value_mark
from diffc.training.recipe_overrides import apply_overrides, is_override_mark

DEFAULT_RECIPE_NAME = "<default recipe>"


def _strict(kind):
    def hook(value, _type):
        if isinstance(value, bool) and kind is not bool:
            raise ValueError(f"expected {kind.__name__}, got a boolean")
        if kind is float and isinstance(value, (int, str)):
            try:
                return float(value)          # YAML 1.1 reads `1e-3` (no dot) as a string
            except ValueError:
                pass
        if not isinstance(value, kind):
            raise ValueError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        return value
    return hook


converter = cattrs.Converter()
for _kind in (int, float, str, bool):
    converter.register_structure_hook(_kind, _strict(_kind))
converter.register_structure_hook(Duration, lambda value, _type: Duration.parse(value))
converter.register_unstructure_hook(Duration, str)


MAX_NODES = 20_000                # scalars and collections after expanding aliases (an alias bomb needs billions)
MAX_DEPTH = 64                    # nesting of mappings and lists


def _check_size(text: str, filename: str) -> None:
    """Refuse alias bombs, recursive aliases and deep nesting from the event stream, before anything is built:
    the parser is iterative, and each anchor's expanded size is known when it closes."""
    sizes: dict[str, int] = {}                           # anchor -> node count with aliases expanded
    stack = [[None, 0]]                                  # open collections: [anchor, node count so far]
    for event in yaml.parse(text):
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1])
            if len(stack) > MAX_DEPTH:
                raise UserError(_error(filename, event.start_mark, f"nested deeper than {MAX_DEPTH} levels"))
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, count = stack.pop()
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes and any(frame[0] == event.anchor for frame in stack):
                raise UserError(_error(filename, event.start_mark, f"recursive alias '*{event.anchor}'",
                                       "a recipe is a tree: write the values out"))
            anchor, count = None, sizes.get(event.anchor, 1)
        elif isinstance(event, yaml.ScalarEvent):
            anchor, count = event.anchor, 1
        else:
            continue
        if anchor is not None:
            sizes[anchor] = count
        stack[-1][1] += count
        if sum(frame[1] for frame in stack) > MAX_NODES:
            raise UserError(_error(filename, event.start_mark,
                                   f"the recipe expands to more than {MAX_NODES} values (aliases counted in full)",
                                   "a recipe is a page of settings; this looks like an alias bomb"))


class _Located:
    """A plain-Python value from YAML plus the marks of every mapping key and value below it."""

    def __init__(self, filename: str):
        self.filename = filename
        self.duplicates = []
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node):
        if isinstance(node, yaml.MappingNode):
            out = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in out:
                    self.duplicates.append((key, key_node.start_mark))
                out[key] = self.build(value_node)
                out.setdefault("__marks__", {})[key] = (key_node.start_mark, value_node.start_mark, value_node.end_mark)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v) for v in node.value]
        try:
            return self.constructor.construct_object(node, deep=True)
        except (ValueError, OverflowError, yaml.YAMLError) as exc:   # e.g. an integer of 5,000 digits
            raise UserError(_error(self.filename, node.start_mark, f"cannot read this value ({str(exc).split(':')[0]})",
                                   end=node.end_mark)) from None


def _error(filename: str, mark, message: str, help: str | None = None, end=None) -> Diagnostic:
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
    filename = mark.name if is_override_mark(mark) else filename
    end_col = end.column + 1 if end is not None and mark is not None and end.line == mark.line else None
    return Diagnostic(message, file=filename, line=line, col=col, end_col=end_col, help=help)


def _describe(field: attrs.Attribute) -> str:
    meta = field.metadata
    if "choices" in meta:
        return "one of " + ", ".join(meta["choices"])
    return getattr(field.type, "__name__", None) or str(field.type).replace("typing.", "")


def _numbers(value) -> list:
    """The numbers a field value holds: itself, a duration's count, or a list's elements."""
    if isinstance(value, Duration):
        return [value.value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def _number_problem(number, bound) -> str | None:
    if isinstance(number, float) and not math.isfinite(number):
        return "finite"
    if bound is not None and not bound.accepts(number):
        return f"{bound.meaning} ({bound})" if bound.meaning else str(bound)
    if isinstance(number, int) and not -2 ** 63 <= number < 2 ** 63:
        return "a 64-bit integer"
    return None


def _check(field: attrs.Attribute, value) -> tuple[str, str | None] | None:
    """Choice and meaning (Bound) constraints from the field metadata: (message, help) or None."""
    meta = field.metadata
    if value is None:
        return None
    if "choices" in meta and value not in meta["choices"]:
        return (f"unknown {field.name} '{value}'", did_you_mean(str(value), meta["choices"])
                or "expected " + _describe(field))
    for number in _numbers(value):
        problem = _number_problem(number, meta.get("bound"))
        if problem:
            shown = str(value) if len(str(value)) <= 40 else str(value)[:40] + "..."
            return (f"'{field.name}' must be {problem}, got {shown}", None)
    return None


def _structure(cls, data, filename: str, where: str, errors: list[Diagnostic], mark=None):
    """Structure one attrs class field by field (cattrs for the leaves) so each error keeps its position."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        errors.append(_error(filename, mark, f"'{where}' must be a mapping of keys, got {type(data).__name__}"))
        return cls()
    marks = data.get("__marks__", {})
    fields = {f.name: f for f in attrs.fields(cls)}
    kwargs = {}
    for key in (k for k in data if k != "__marks__"):
        key_mark, value_mark, value_end = marks[key]
        field = fields.get(key)
        if field is None:
            scope = f"in '{where}'" if where else "at the top level"
            errors.append(_error(filename, key_mark, f"unknown key '{key}' {scope}",
                                 did_you_mean(key, fields) or "known keys: " + ", ".join(fields)))
            errors[-1].end_col = key_mark.column + 1 + len(key)
            continue
        path = f"{where}.{key}" if where else key
        if attrs.has(field.type) and field.type is not Duration:
            kwargs[key] = _structure(field.type, data[key], filename, path, errors, value_mark)
            continue
        try:
            value = converter.structure(data[key], field.type)
        except Exception as exc:  # cattrs raises ValueError/TypeError/ClassValidationError for bad leaves
            reason = exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) else exc
            errors.append(_error(filename, value_mark, f"invalid value for '{path}': {reason}",
                                 "expected " + _describe(field), end=value_end))
            continue
        problem = _check(field, value)
        if problem:
            errors.append(_error(filename, value_mark, f"{problem[0]} (in '{path}')", problem[1], end=value_end))
            continue
        kwargs[key] = value
    return cls(**kwargs)


def parse_recipe(text: str, filename: str = "<recipe>", base_dir: Path | None = None, overrides=()) -> Recipe:
    """Parse YAML text, with `key.sub=value` overrides on top, into a Recipe; raises UserError with every located
    problem (an override's at `<override N: text>:1:col`). With `base_dir` (the recipe's folder) data paths are
    checked on disk too."""
    try:
        _check_size(text, filename)
        node = yaml.compose(text)
        located = _Located(filename)
        data = located.build(node) if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        diag = _error(filename, mark, f"invalid YAML: {getattr(exc, 'problem', exc)}")
        attach_source([diag], {filename: text})
        raise UserError(diag) from None
    except UserError as err:
        attach_source(err.diagnostics, {filename: text})
        raise
    errors: list[Diagnostic] = []
    sources = apply_overrides(data, overrides, located.build, errors) if isinstance(data, dict) else {}
    errors.extend(_error(filename, mark, f"duplicate key '{key}'", "each key may appear once per section")
                  for key, mark in located.duplicates)
    recipe = _structure(Recipe, data, filename, "", errors, getattr(node, "start_mark", None))
    errors.extend(cross_checks(recipe, data, base_dir, lambda key, message, help: _error(
        filename, value_mark(data, key) or getattr(node, "start_mark", None), message, help)))
    if errors:
        errors.sort(key=lambda d: (d.file != filename, d.file or "", d.line or 0, d.col or 0))
        attach_source(errors, {filename: text, **sources})
        raise UserError(errors)
    return recipe


def load_recipe(path: str | Path | None, overrides=()) -> tuple[Recipe, str, str]:
    """(recipe, text, name) from a YAML file, or the built-in default when path is None, with `overrides`."""
    if path is None:
        return (parse_recipe(DEFAULT_RECIPE_YAML, DEFAULT_RECIPE_NAME, overrides=overrides), DEFAULT_RECIPE_YAML,
                DEFAULT_RECIPE_NAME)
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe file not found: {path}", file=str(path))
    text = read_text(path, "recipe")
    return parse_recipe(text, str(path), path.parent, overrides), text, str(path)


def recipe_to_dict(recipe: Recipe) -> dict:
    """The fully resolved recipe as plain data (every default explicit), for dry-run and checkpoints."""
    return converter.unstructure(recipe)


def recipe_from_dict(data: dict) -> Recipe:
    return converter.structure(data, Recipe)


def recipe_to_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, default_flow_style=None)


def with_overrides(recipe: Recipe, **changes) -> Recipe:
    """A copy with top-level fields replaced (CLI flags such as --steps)."""
    return attrs.evolve(recipe, **{k: v for k, v in changes.items() if v is not None})

