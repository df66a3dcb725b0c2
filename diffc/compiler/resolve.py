"""Resolve pass: evaluate a model of a Program into the IR (names -> registry, loops unrolled).

Statements run in source order in one scope per model or composite call (loop bodies share it, so
`h = dit_block(h, c)` inside `repeat` carries h). Calls of registered blocks become IR nodes named after
the assignment target (or `as "name"`); `repeat`/`for`/regions prefix names; a `@stage` region is
evaluated once per stage on a copy of the scope, and the values it changes are merged back.
"""
from __future__ import annotations

import contextlib


from diffc.compiler.annotations import AnnotationBinder
from diffc.compiler.budgets import Budget
from diffc.compiler.evaluate import Evaluator, typed
from diffc.compiler.inputs import make_input
from diffc.compiler.ir import Frame, ModelIR, Node, Region, Wire, build_graph
from diffc.compiler.program import Program
from diffc.dsl import ast as A
from diffc.errors import did_you_mean, fail
from diffc.registry import REGISTRY
from diffc.registry.core import format_value


class _Returned(Exception):
    def __init__(self, values):
        self.values = values


class Resolver:
    """Runs a model's statements, building IR nodes; expressions go to an Evaluator, annotations to an
    AnnotationBinder, both composed here with explicit collaborators."""

    def __init__(self, program: Program):
        self.program = program
        self.budget = Budget()
        self.evaluator = Evaluator(program, self.budget, self)
        self.binder = AnnotationBinder(self.evaluator)
        self.nodes: list[Node] = []
        self.names: dict[str, Node] = {}
        self.frames: list[Frame] = []
        self.active: list = []            # AnnotationUse stack applying to new nodes
        self.stage: tuple | None = None
        self.regions: dict[str, Region] = {}
        self.inputs: list = []
        self.iteration_nodes: list[list[Node]] = []
        self.stage_regions: list[dict] = []      # filled by diffc.methods.stage
        self.unlabeled: list[tuple[int, int]] = []   # (frame depth, iteration) of each enclosing unlabeled loop
        self.statement: A.Stmt | None = None     # the statement being run (for a RecursionError's location)

    # ---- entry ---------------------------------------------------------------------------------
    def resolve(self, model_name: str):
        try:
            return self._resolve(model_name)
        except RecursionError:      # a safety net under the explicit limits (nesting, composite calls)
            where = self.statement.loc if self.statement else self.program.entry.items[0].loc
            raise fail("this spec nests too deeply to evaluate", where,
                       help="flatten nested composite blocks, loops and long expressions") from None

    def _resolve(self, model_name: str):
        definition, arguments = self._model_definition(model_name)
        scope = dict(arguments)
        self.model_annotations(definition, scope)
        try:
            self.run_body(definition.body, scope)
            raise fail(f"model '{model_name}' has no `return`", definition.loc,
                       help="end the model with `return <prediction>`")
        except _Returned as ret:
            outputs = ret.values
        if not all(isinstance(o, Wire) for o in outputs):
            raise fail("a model must return tensors", definition.loc)
        self.binder.check_overlays_used(list(self.regions) + list(self.names) + ["model"])
        recipe = self.program.recipe.path if self.program.recipe else None
        model = ModelIR(model_name, definition.loc.file, self.inputs, outputs, self.regions, self.binder.annotations,
                        recipe, arguments, stage_regions=self.stage_regions)
        return build_graph(self._live_nodes(outputs), model)

    def _model_definition(self, name: str):
        """Follow presets to the model definition (`name` is checked by Program.choose_model); returns
        (definition, resolved arguments)."""
        chain, item = [], self.program.models[name]
        while isinstance(item, A.Preset):
            chain.append(item)
            if item.base not in self.program.models:
                raise fail(f"unknown model '{item.base}'", item.base_loc, help=did_you_mean(item.base, self.program.models))
            item = self.program.models[item.base]
            if item in chain:
                raise fail(f"preset cycle through '{item.name}'", item.loc)
        params = {p.name: p for p in item.params}
        arguments: dict = {}
        for preset in reversed(chain):          # the base's presets first, the named preset last
            for kw in preset.kwargs:
                if kw.name not in params:
                    raise fail(f"model {item.name} has no parameter '{kw.name}'", kw.loc,
                               help=did_you_mean(kw.name, params),
                               notes=[f"parameters of {item.name}: " + ", ".join(params)])
                arguments[kw.name] = (kw.value, {})
            for overlay in preset.overlay or []:
                self.binder.add_overlay(overlay)
        values: dict = {}
        for p in item.params:
            expr, _ = arguments.get(p.name, (p.default, None))
            if expr is None:
                raise fail(f"model {item.name} needs a value for '{p.name}'", p.loc,
                           help=f"define a preset: model X = {item.name}({p.name} = ...)")
            value = self.evaluator.constant(expr, dict(values), f"parameter '{p.name}'")
            values[p.name] = typed(value, p, expr.loc)
        return item, values

    # ---- statements ----------------------------------------------------------------------------
    def run_body(self, body: list, scope: dict) -> None:
        for stmt in body:
            self.run(stmt, scope)

    def run(self, stmt: A.Stmt, scope: dict) -> None:
        self.budget.step(stmt.loc)
        self.statement = stmt
        if isinstance(stmt, A.Input):
            return self.run_input(stmt, scope)
        if isinstance(stmt, A.Return):
            values = [self.evaluator.evaluate(v, scope, (f"out{i}" if len(stmt.values) > 1 else "out", False))
                      for i, v in enumerate(stmt.values)]
            raise _Returned(values)
        if isinstance(stmt, A.If):
            branch = stmt.body if self.evaluator.constant(stmt.test, scope, "an `if` condition") else stmt.orelse
            return self.run_body(branch, scope)
        if isinstance(stmt, A.Assign):
            return self.with_annotations(stmt, "block", self._target_name(stmt, scope), scope,
                                         lambda: self.run_assign(stmt, scope))
        if isinstance(stmt, A.Repeat):
            return self.run_loop(stmt, scope, list(range(self._count(stmt, scope))), "repeat")
        if isinstance(stmt, A.For):
            items = self.evaluator.constant(stmt.iterable, scope, "a `for` list")
            if not isinstance(items, list):
                raise fail(f"`for` needs a list, got {format_value(items)}", stmt.iterable.loc)
            return self.run_loop(stmt, scope, items, "for")
        if isinstance(stmt, A.Region):
            return self.run_region(stmt, scope)
        raise AssertionError(type(stmt))

    def run_input(self, stmt: A.Input, scope: dict) -> None:
        if self.frames:
            raise fail("inputs are declared at the top level of a model", stmt.loc)
        node = self.add_node(Node(stmt.name, "input", None, [], stmt.loc, scopes=()))
        uses = [self.binder.bind_annotation(a, "input", stmt.name, scope) for a in stmt.annotations]
        self.inputs.append(make_input(self.evaluator, stmt, node, uses, scope, self.inputs))
        scope[stmt.name] = Wire(node)

    def _target_name(self, stmt: A.Assign, scope: dict) -> str:
        if stmt.node_name is not None:
            return self.full_name(self.evaluator.interpolate(stmt.node_name.value, scope, stmt.node_name.loc), True)
        return self.full_name(stmt.targets[0], False)

    def run_assign(self, stmt: A.Assign, scope: dict) -> None:
        explicit = stmt.node_name is not None
        name = self.evaluator.interpolate(stmt.node_name.value, scope, stmt.node_name.loc) if explicit else stmt.targets[0]
        value = self.evaluator.evaluate(stmt.value, scope, (name, explicit))
        if len(stmt.targets) > 1:
            if not isinstance(value, Wire) or not isinstance(value.node.block, str):
                raise fail(f"cannot unpack {len(stmt.targets)} values from this expression", stmt.value.loc)
            info = REGISTRY.block(value.node.block)
            outs = info.outputs if info else ()
            if len(outs) != len(stmt.targets):
                raise fail(f"{value.node.block} has {len(outs)} output(s) ({', '.join(outs)}), "
                           f"but {len(stmt.targets)} names are assigned", stmt.loc)
            for i, target in enumerate(stmt.targets):
                scope[target] = Wire(value.node, i)
        else:
            scope[stmt.targets[0]] = value
        if stmt.push:
            stack = scope.get(stmt.push, [])
            if not isinstance(stack, list):
                raise fail(f"'-> {stmt.push}' pushes onto a list, but '{stmt.push}' is {format_value(stack)}",
                           stmt.push_loc)
            scope[stmt.push] = self.budget.value(stack + [value], stmt.push_loc)

    def _count(self, stmt: A.Repeat, scope: dict) -> int:
        count = self.evaluator.constant(stmt.count, scope, "a repeat count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise fail(f"repeat count must be a non-negative integer, got {format_value(count)}", stmt.count.loc)
        return self.budget.count(count, "the repeat count", stmt.count.loc)

    def run_loop(self, stmt, scope: dict, items: list, kind: str) -> None:
        label = stmt.label or (self._default_label(stmt.body) if kind == "repeat" else None)
        full = self.prefix() + label if label else None
        region = Region(full, kind, stmt.loc) if full else None
        if full:
            self.register_region(region, stmt)

        def body():
            for i, item in enumerate(items):
                if kind == "repeat" and stmt.var:
                    scope[stmt.var] = item
                elif kind == "for":
                    self._bind_for(stmt, scope, item)
                extra = self.binder.overlay_uses(full, i, kind, scope) if full else []
                self.active.extend(extra)
                if not label:
                    self.unlabeled.append((len(self.frames), i))
                try:
                    with self.collecting(Frame(kind, label, i, loc=stmt.loc) if label else None, region) as created:
                        self.run_body(stmt.body, scope)
                        if label:
                            self._fold_single(created, f"{full}.{i}")
                finally:
                    del self.active[len(self.active) - len(extra):]
                    if not label:
                        self.unlabeled.pop()
        target_kind = "repeat" if kind == "repeat" else "for"
        self.with_annotations(stmt, target_kind, full or "for", scope, body, region)

    def _bind_for(self, stmt: A.For, scope: dict, item) -> None:
        if stmt.var2 is None:
            scope[stmt.var] = item
            return
        if not isinstance(item, list) or len(item) != 2:
            raise fail(f"`for {stmt.var}, {stmt.var2} in ...` needs pairs, got {format_value(item)}",
                       stmt.iterable.loc, help="use enumerate(xs) or zip(xs, ys)")
        scope[stmt.var], scope[stmt.var2] = item

    @staticmethod
    def _default_label(body: list) -> str:
        first = next((s for s in body if isinstance(s, A.Assign)), None)
        return first.targets[0] if first else "repeat"

    def _fold_single(self, created: list[Node], name: str) -> None:
        """An iteration that made exactly one (auto-named) node names it `label.i` (e.g. blocks.3)."""
        if len(created) == 1 and not created[0].meta.get("explicit_name") and name not in self.names:
            node = created[0]
            del self.names[node.name]
            node.name = name
            self.names[name] = node

    def run_region(self, stmt: A.Region, scope: dict) -> None:
        full = self.prefix() + stmt.name
        region = Region(full, "region", stmt.loc)
        self.register_region(region, stmt)
        stage_use = self.binder.stage_annotation(stmt, full, scope)
        if stage_use is not None:
            from diffc.methods.stage import run_stage_region
            return run_stage_region(self, stmt, scope, region, stage_use)

        def body():
            with self.collecting(Frame("region", stmt.name, loc=stmt.loc), region):
                self.run_body(stmt.body, scope)
        self.with_annotations(stmt, "region", full, scope, body, region)

    def with_annotations(self, stmt, target_kind: str, target: str, scope: dict, run, region: Region | None = None):
        """Run `run()` with the statement's annotations (inline and from overlays) applying to new nodes."""
        uses = [self.binder.bind_annotation(a, target_kind, target, scope) for a in stmt.annotations
                if not (a.name == "stage" and target_kind == "region")]
        uses += self.binder.overlay_uses(target, None, target_kind, scope)
        if region is not None:
            region.annotations.extend(uses)
        self.active.extend(uses)
        try:
            run()
        finally:
            del self.active[len(self.active) - len(uses):]

    def model_annotations(self, definition: A.BlockDef, scope: dict) -> None:
        self.active.extend(self.binder.bind_annotation(a, "model", "model", scope) for a in definition.annotations)
        self.active.extend(self.binder.overlay_uses("model", None, "model", scope))

    def register_region(self, region: Region, stmt) -> None:
        if region.label in self.regions:
            raise fail(f"region name '{region.label}' is already used (line {self.regions[region.label].loc.line})",
                       stmt.loc, help="label it differently: `name: repeat ...`")
        self.regions[region.label] = region

    # ---- composite blocks ---------------------------------------------------------------------
    def call_composite(self, expr: A.Call, definition: A.BlockDef, scope: dict, name):
        local, explicit = name if name else (self._auto_name(expr.func), False)
        if not explicit:                     # a composite's `as` name stays relative to the enclosing labels
            local = self.full_name(local, False)[len(self.prefix()):]
        inputs = [p for p in definition.params if p.type is None and p.default is None]
        params = {p.name: p for p in definition.params}
        if len(expr.args) > len(inputs):
            raise fail(f"{definition.name} takes {len(inputs)} tensor input(s), got {len(expr.args)}", expr.loc)
        inner: dict = {}
        for p, arg in zip(inputs, expr.args):
            inner[p.name] = self.evaluator.evaluate(arg, scope)
        for kw in expr.kwargs:
            if kw.name not in params:
                raise fail(f"{definition.name} has no parameter '{kw.name}'", kw.loc, help=did_you_mean(kw.name, params),
                           notes=[f"parameters of {definition.name}: " + ", ".join(params)])
            inner[kw.name] = typed(self.evaluator.evaluate(kw.value, scope), params[kw.name], kw.value.loc)
        for p in definition.params:
            if p.name not in inner:
                if p.default is None:
                    raise fail(f"{definition.name} is missing '{p.name}'", expr.loc)
                inner[p.name] = typed(self.evaluator.constant(p.default, dict(inner), p.name), p, p.default.loc)
        full = self.prefix() + local
        region = Region(full, "composite", expr.loc)
        self.regions[full] = region
        with self.budget.call(definition.name, expr.loc), \
                self.collecting(Frame("composite", local, block=definition.name, loc=expr.loc), region):
            try:
                self.run_body(definition.body, inner)
                raise fail(f"block '{definition.name}' has no `return`", definition.loc)
            except _Returned as ret:
                values = ret.values
        return values[0] if len(values) == 1 else values

    # ---- nodes ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def collecting(self, frame: Frame | None, region: Region | None = None):
        """Enter `frame` (a name prefix) and collect the nodes created inside; they also count for the
        enclosing collection, and become one iteration of `region`."""
        if frame is not None:
            self.frames.append(frame)
        created: list[Node] = []
        self.iteration_nodes.append(created)
        try:
            yield created
        finally:
            if frame is not None:
                self.frames.pop()
            self.iteration_nodes.pop()
            if region is not None:
                region.iterations.append(created)
            if self.iteration_nodes:
                self.iteration_nodes[-1].extend(created)

    def prefix(self, frames=None) -> str:
        parts = []
        for f in self.frames if frames is None else frames:
            if f.kind in ("repeat", "for", "stage"):
                parts.append(f"{f.label}.{f.index}")
            else:
                parts.append(f.label)
        return "".join(p + "." for p in parts)

    def full_name(self, local: str, explicit: bool) -> str:
        """The node name of an assignment target or `as` name: prefixed by the enclosing labels. A dotted `as`
        name is written in full, so only the prefix of the innermost composite call or @stage copy is kept;
        in a loop without a label a target gets the iteration number (`h.0`, `h.1`, like a repeat's nodes)."""
        if explicit and "." in local:
            kept = max((i + 1 for i, f in enumerate(self.frames) if f.kind in ("composite", "stage")), default=0)
            return self.prefix(self.frames[:kept]) + local
        if not explicit:
            local += "".join(f".{i}" for depth, i in self.unlabeled if depth == len(self.frames))
        return self.prefix() + local

    def _auto_name(self, block: str) -> str:
        base, k = block, 1
        while self.prefix() + base in self.names:
            k += 1
            base = f"{block}_{k}"
        return base

    def new_node(self, block: str, inputs: list, kwargs: dict, loc: A.Loc, scope: dict, name, arg_locs=None):
        info = REGISTRY.block(block)
        params = self.evaluator.make_params(info, kwargs, loc, arg_locs or {})
        explicit = bool(name and name[1])
        full = self.full_name(*name) if name else self.prefix() + self._auto_name(block)
        if "stateless" in info.tags and not explicit and full in self.names:
            full = self.prefix() + self._auto_name(full[len(self.prefix()):])   # no weights: never in a state_dict
        node = Node(full, block, params, inputs, loc, arg_locs or {}, tuple(self.frames),
                    list(self.active))
        node.meta["explicit_name"] = explicit
        node.meta["kwargs"] = dict(kwargs)
        if self.stage is not None:
            node.meta["stage"] = self.stage
        return Wire(self.add_node(node))

    def add_node(self, node: Node) -> Node:
        self.budget.node(node.loc)
        if node.name in self.names:
            other = self.names[node.name]
            raise fail(f"node name '{node.name}' is already used by {other.describe()}", node.loc,
                       help='give this one its own name: `h2 = block(...)` or `h = block(...) as "name"`')
        self.names[node.name] = node
        self.nodes.append(node)
        if self.iteration_nodes:
            self.iteration_nodes[-1].append(node)
        return node

    def _live_nodes(self, outputs: list[Wire]) -> list[Node]:
        """Drop nodes that nothing consumes (e.g. unused stage merges); inputs always stay."""
        live, todo = set(), [w.node for w in outputs]
        todo += [n for n in self.nodes if any(a.name == "tap" for a in n.annotations)]
        while todo:
            n = todo.pop()
            if id(n) in live:
                continue
            live.add(id(n))
            todo.extend(w.node for w in n.inputs if w is not None)
        return [n for n in self.nodes if id(n) in live or n.block == "input"]


def resolve(program: Program, model: str | None = None):
    """The resolve pass: Program -> networkx IR of one model (the spec's default when None)."""
    return Resolver(program).resolve(program.choose_model(model))


__all__ = ["resolve", "Resolver"]
