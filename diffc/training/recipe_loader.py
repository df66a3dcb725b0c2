"""Load a recipe YAML into `Recipe` with cattrs; every mistake is a UserError at the key's file:line:col."""
from __future__ import annotations

from pathlib import Path

import attrs
import cattrs
import yaml

from diffc.errors import Diagnostic, UserError, attach_source, did_you_mean
from diffc.training.recipe import DEFAULT_RECIPE_YAML, Duration, Recipe

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


class _Located:
    """A plain-Python value from YAML plus the marks of every mapping key and value below it."""

    def __init__(self, filename: str):
        self.filename = filename
        self.duplicates = []

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
        return yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:null" else None


def _error(filename: str, mark, message: str, help: str | None = None, end=None) -> Diagnostic:
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
    end_col = end.column + 1 if end is not None and mark is not None and end.line == mark.line else None
    return Diagnostic(message, file=filename, line=line, col=col, end_col=end_col, help=help)


def _describe(field: attrs.Attribute) -> str:
    meta = field.metadata
    if "choices" in meta:
        return "one of " + ", ".join(meta["choices"])
    return getattr(field.type, "__name__", None) or str(field.type).replace("typing.", "")


def _check(field: attrs.Attribute, value) -> tuple[str, str | None] | None:
    """Range / choice constraints from the field metadata: (message, help) or None."""
    meta = field.metadata
    if value is None:
        return None
    if "choices" in meta and value not in meta["choices"]:
        return (f"unknown {field.name} '{value}'", did_you_mean(str(value), meta["choices"])
                or "expected " + _describe(field))
    if "min" in meta and value < meta["min"]:
        return (f"'{field.name}' must be at least {meta['min']}, got {value}", None)
    if "range" in meta and not meta["range"][0] <= value <= meta["range"][1]:
        return (f"'{field.name}' must lie in [{meta['range'][0]}, {meta['range'][1]}], got {value}", None)
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


def parse_recipe(text: str, filename: str = "<recipe>") -> Recipe:
    """Parse YAML text into a Recipe; raises UserError with every located problem."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        diag = _error(filename, mark, f"invalid YAML: {getattr(exc, 'problem', exc)}")
        attach_source([diag], {filename: text})
        raise UserError(diag) from None
    errors: list[Diagnostic] = []
    located = _Located(filename)
    data = located.build(node) if node is not None else {}
    errors.extend(_error(filename, mark, f"duplicate key '{key}'", "each key may appear once per section")
                  for key, mark in located.duplicates)
    recipe = _structure(Recipe, data, filename, "", errors, getattr(node, "start_mark", None))
    _cross_checks(recipe, data, filename, errors)
    if errors:
        attach_source(errors, {filename: text})
        raise UserError(errors)
    return recipe


def _cross_checks(recipe: Recipe, data, filename: str, errors: list[Diagnostic]) -> None:
    """Constraints between keys, reported at the later key."""
    marks = data.get("__marks__", {}) if isinstance(data, dict) else {}
    if recipe.batch_per_gpu is not None and recipe.batch % recipe.batch_per_gpu:
        errors.append(_error(filename, marks.get("batch_per_gpu", (None,) * 2)[1],
                             f"batch_per_gpu {recipe.batch_per_gpu} does not divide batch {recipe.batch}"))
    if recipe.ema.kind == "power":
        bad = [s for s in recipe.ema.sigma_rel if not 0 < s < 0.2886]
        if bad or not recipe.ema.sigma_rel:
            ema_marks = data.get("ema", {}).get("__marks__", {}) if isinstance(data.get("ema"), dict) else {}
            errors.append(_error(filename, ema_marks.get("sigma_rel", (None, None))[1],
                                 f"power EMA needs sigma_rel values in (0, 0.2886), got {recipe.ema.sigma_rel}",
                                 "EDM2 uses [0.05, 0.10]"))


def load_recipe(path: str | Path | None) -> tuple[Recipe, str, str]:
    """(recipe, text, name) from a YAML file, or the built-in default when path is None."""
    if path is None:
        return parse_recipe(DEFAULT_RECIPE_YAML, DEFAULT_RECIPE_NAME), DEFAULT_RECIPE_YAML, DEFAULT_RECIPE_NAME
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe file not found: {path}", file=str(path))
    text = path.read_text()
    return parse_recipe(text, str(path)), text, str(path)


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

