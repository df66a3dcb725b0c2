"""Binding annotations (inline or from overlays) to IR targets, checked against the registry."""
from __future__ import annotations

import attrs

from diffc.compiler.ir import AnnotationUse
from diffc.dsl import ast as A
from diffc.errors import did_you_mean, fail
from diffc.registry import REGISTRY, Link
from diffc.registry.values import ValueTypeError, coerce

WHERE = {"model": "a model", "block": "a block call", "repeat": "a repeat", "for": "a for loop",
         "region": "a named region", "input": "an input"}


class AnnotationBinder:
    """Binds annotations written inline or in presets' overlays to targets, checked against the registry.
    Arguments are evaluated by `evaluator`; the bound uses collect in `annotations`."""

    def __init__(self, evaluator):
        self.evaluator = evaluator
        self.annotations: list[AnnotationUse] = []
        self.overlays: dict = {}          # target label -> [(A.Annotation, index | PathSlice | None, A.OverlayItem)]
        self.used_overlays: set = set()

    def bind_annotation(self, ann: A.Annotation, target_kind: str, target: str, scope: dict) -> AnnotationUse:
        info = REGISTRY.annotation(ann.name)
        if info is None:
            raise fail(f"unknown annotation '@{ann.name}'", ann.name_loc,
                       help=did_you_mean(ann.name, REGISTRY.load().annotations) or
                       "known: " + ", ".join("@" + n for n in sorted(REGISTRY.annotations)))
        kind = "repeat" if target_kind == "for" else target_kind
        if kind not in info.targets:
            allowed = " or ".join(WHERE[t] for t in sorted(info.targets))
            raise fail(f"@{ann.name} cannot be put on {WHERE[target_kind]}; it goes on {allowed}", ann.name_loc)
        fields = {f.name: f for f in attrs.fields(info.params)}
        kwargs, refs, positional, arg_locs = {}, [], list(info.positional), {}
        for arg in ann.args:
            if arg.kind == "link":
                if info.variadic is None:
                    raise fail(f"@{ann.name} takes no 'a -> b' arguments", arg.loc, notes=[info.signature()])
                refs.append((self.reference(arg.value, scope), self.reference(arg.target, scope), arg.loc))
                continue
            if arg.kind == "pos":
                if not positional:
                    raise fail(f"@{ann.name} takes at most {len(info.positional)} positional argument(s)", arg.loc,
                               notes=[info.signature()])
                name = positional.pop(0)
            else:
                name = arg.name
                if name not in fields or name == info.variadic:
                    raise fail(f"@{ann.name} has no argument '{name}'", arg.loc,
                               help=did_you_mean(name, [f for f in fields if f != info.variadic]),
                               notes=[info.signature()])
                if name in positional:
                    positional.remove(name)
            if name in kwargs:
                raise fail(f"@{ann.name}: argument '{name}' given twice", arg.loc)
            value = self.evaluator.constant(arg.value, scope, f"@{ann.name} argument '{name}'")
            try:
                kwargs[name] = coerce(value, fields[name].type)
            except ValueTypeError as exc:
                raise fail(f"@{ann.name}: argument '{name}' {exc}", arg.value.loc, notes=[info.signature()]) from None
            arg_locs[name] = arg.value.loc
        if info.variadic:
            kwargs[info.variadic] = [Link(a, b) for a, b, _ in refs]
        try:
            params = info.params(**kwargs)
        except (ValueError, TypeError) as exc:
            field = next((f for f in kwargs if f"'{f}'" in str(exc)), None)
            raise fail(f"@{ann.name}: {exc}", arg_locs.get(field, ann.loc), notes=[info.signature()]) from None
        use = AnnotationUse(ann.name, params, ann.loc, target, target_kind, refs)
        self.annotations.append(use)
        return use

    def reference(self, expr: A.Expr, scope: dict):
        """A graph reference in an annotation: an int (a depth in the target: after that many layers) or a
        node path (`blocks.7`, `blocks[7]`, 0-based)."""
        if isinstance(expr, A.Num) and isinstance(expr.value, int):
            return expr.value
        parts = []
        while True:
            if isinstance(expr, A.Name):
                return ".".join([expr.id] + parts[::-1])
            if isinstance(expr, A.Attr):
                parts.append(expr.name)
                expr = expr.obj
            elif isinstance(expr, A.Index) and isinstance(expr.index, A.Num):
                parts.append(str(expr.index.value))
                expr = expr.obj
            elif isinstance(expr, A.Str):
                return ".".join([expr.value] + parts[::-1])
            else:
                raise fail("a reference must be a depth (8: the output after 8 layers) or a node path like blocks.7",
                           expr.loc)

    def stage_annotation(self, stmt: A.Region, target: str, scope: dict):
        anns = [a for a in stmt.annotations if a.name == "stage"]
        anns += [a for a, index, _ in self.overlays.get(target, []) if a.name == "stage" and index is None]
        if len(anns) > 1:
            raise fail("a region takes one @stage annotation", anns[1].loc)
        return self.bind_annotation(anns[0], "region", target, scope) if anns else None

    # ---- overlays: `model X = Base(...) with { @route(0.8, 4) blocks[*] }` ----------------------------
    def add_overlay(self, item: A.OverlayItem) -> None:
        names = [p for p in item.path if isinstance(p, str) and p != "*"]
        index = item.path[-1] if isinstance(item.path[-1], int | A.PathSlice) else None
        if isinstance(index, A.PathSlice) and index.step == 0:
            raise fail("a slice step must be at least 1", item.path_loc, help="e.g. blocks[::2] (every other block)")
        key = ".".join(names)
        for ann in item.annotations:
            self.overlays.setdefault(key, []).append((ann, index, item))

    def overlay_uses(self, target: str, index, target_kind: str, scope: dict) -> list:
        uses = []
        for i, (ann, idx, item) in enumerate(self.overlays.get(target, [])):
            selected = idx == index or (isinstance(idx, A.PathSlice) and index is not None and idx.selects(index))
            if selected and not (ann.name == "stage" and target_kind == "region"):
                self.used_overlays.add((target, i))
                uses.append(self.bind_annotation(ann, target_kind, target, scope))
            elif selected:
                self.used_overlays.add((target, i))
        return uses

    def check_overlays_used(self, known: list[str]) -> None:
        """Every overlay matched something; `known` (labels and node names) feeds the did-you-mean."""
        for target, entries in self.overlays.items():
            for i, (ann, idx, item) in enumerate(entries):
                if (target, i) not in self.used_overlays:
                    what = f"{target}[{idx}]" if idx is not None else target
                    raise fail(f"overlay target '{what}' matches nothing in this model", item.path_loc,
                               help=did_you_mean(target, known) or "targets: repeat/region labels, node names, model")
