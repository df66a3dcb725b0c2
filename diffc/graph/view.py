"""The view model `diffc graph` draws, built from a compiled model's IR (plain Python, no torch).

Folded (the default): every node of a `repeat` becomes one node (`blocks x28`, the block type and the
per-iteration output shape), and the stage copies of a `@stage` region share one cluster ("x3 stages");
then diffc.graph.fold folds runs of the same block kind and shape, draws wide fan-outs (an embedding read by
every block) once and marks skip connections. Expanded: one view node per IR node. Composites, regions,
loops and stages become clusters. The renderers (dot, mermaid, html) read only this model.
"""
from __future__ import annotations

from pathlib import Path

import attrs

from diffc.compiler.ir import nodes_in_order
from diffc.registry import REGISTRY
from diffc.registry.core import format_value
from diffc.registry.shapes import fmt

FILLS = {"input": "#dbe8fb", "output": "#e6e6e6", "folded": "#efe6fa", "block": "#ffffff", "fanout": "#fafafa"}
REGION_FILL = "#f7f7f7"


@attrs.define
class ViewNode:
    id: str                          # IR node name, or a folded name (repeat label, "decoder.*.h")
    title: str
    block: str                       # block type(s), or the input kind
    kind: str                        # "input" | "output" | "block" | "folded"
    shape: str                       # output shape(s); per iteration for folded repeats
    file: str
    line: int
    source: str                      # the spec line, stripped
    badges: list = attrs.Factory(list)
    fill: str = FILLS["block"]
    count: int = 1                   # iterations folded into this node
    partial: bool = False            # an annotation covers only some of the folded iterations
    feeds: list = attrs.Factory(list)  # fan-out sources read here but drawn once (diffc.graph.fold)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def heading(self) -> str:
        return f"{self.title} x{self.count}" if self.kind == "folded" else self.title

    @property
    def short_where(self) -> str:
        """`edm2.diffspec:35`: the spec file's name and line (imported library specs differ from the entry)."""
        return f"{Path(self.file).name}:{self.line}"

    @property
    def detail(self) -> str:
        """The second label line: block (and shape where no edge shows it) and spec file:line."""
        if self.kind == "input":
            return f"{self.block}{self.shape} · {self.short_where}"
        if self.kind == "folded":
            return f"{self.block} · out {self.shape} · {self.short_where}"
        if self.kind == "fanout":
            return self.block
        return f"{self.block} · {self.short_where}"


@attrs.define
class ViewEdge:
    src: str
    dst: str
    label: str                       # the tensor shape, or a method's text (e.g. @sync)
    sync: bool = False               # a method's edge (LayerSync pairs), drawn dashed
    skip: bool = False               # a shortcut inside the sample stream (U-Net skip), diffc.graph.fold


@attrs.define
class Cluster:
    id: str                          # dotted path ("" for the root)
    label: str
    kind: str                        # root | composite | repeat | for | region | stage | iteration
    where: str = ""
    fill: str = REGION_FILL
    nodes: list = attrs.Factory(list)        # view node ids directly inside
    children: list = attrs.Factory(list)     # nested Clusters


@attrs.define
class GraphView:
    title: str
    file: str
    badges: list                     # model-level annotations
    nodes: dict                      # id -> ViewNode, in topological order
    edges: list
    root: Cluster
    folded: bool
    legend: list = attrs.Factory(list)   # (fill or edge style, meaning) rows, diffc.graph.fold.legend_rows

    def clusters(self):
        """Every cluster below the root, parents before children."""
        stack = list(reversed(self.root.children))
        while stack:
            cluster = stack.pop()
            yield cluster
            stack.extend(reversed(cluster.children))


def annotation_text(use) -> str:
    """`@route(0.8, 4.0)`: positional parameters unless none/false (`@mp`, not `@mp(false)`), keywords where
    they differ from their default."""
    params = use.params
    if not attrs.has(type(params)):
        return f"@{use.name}"
    info = REGISTRY.annotation(use.name)
    positional = info.positional if info is not None else ()
    args = []
    for field in attrs.fields(type(params)):
        value = getattr(params, field.name)
        if field.name in positional and value is not None and value is not False:
            args.append(format_value(value))
        elif field.name not in positional and value != _default(field):
            args.append(f"{field.name}={format_value(value)}")
    return f"@{use.name}({', '.join(args)})" if args else f"@{use.name}"


def _default(field):
    return field.default.factory() if isinstance(field.default, attrs.Factory) else field.default


class _Folding:
    """Maps IR node names (and cluster paths) to view ids: stage copies share `label.*`, repeats one node."""

    def __init__(self, model, expand: bool):
        self.stage_prefixes: dict[str, str] = {}      # "decoder.1" -> "decoder.*"
        self.repeat_of: dict[str, object] = {}        # IR node name -> folded repeat Region
        if expand:
            return
        for region in model.regions.values():
            for s in range(region.stage_count):
                self.stage_prefixes[f"{region.label}.{s}"] = f"{region.label}.*"
        repeats = [r for r in model.regions.values() if r.kind == "repeat"]
        for region in sorted(repeats, key=lambda r: r.label.count(".")):     # outermost repeat wins
            for node in region.nodes():
                self.repeat_of.setdefault(node.name, region)

    def canonical(self, path: str) -> str:
        for prefix, folded in self.stage_prefixes.items():
            if path == prefix or path.startswith(prefix + "."):
                return folded + path[len(prefix):]
        return path

    def view_id(self, name: str) -> str:
        region = self.repeat_of.get(name)
        return self.canonical(region.label if region is not None else name)


def build_view(compiled, expand: bool = False) -> GraphView:
    graph, model = compiled.graph, compiled.ir
    lines = {path: text.splitlines() for path, text in compiled.program.sources().items()}
    folding = _Folding(model, expand)
    builder = _Builder(model, folding, lines)
    members: dict[str, list] = {}
    for node in nodes_in_order(graph):
        members.setdefault(folding.view_id(node.name), []).append(node)
    for view_id, group in members.items():
        builder.add_node(view_id, group)
    builder.add_data_edges(graph)
    builder.add_outputs()
    builder.add_method_edges()
    _prune(builder.root)
    model_badges = [annotation_text(u) for u in model.annotations if u.target_kind == "model"]
    view = GraphView(model.name, str(compiled.program.entry.path), model_badges, builder.nodes, builder.edges,
                     builder.root, folded=not expand)
    from diffc.graph import fold
    if not expand:
        fold.fold_runs(view)
        fold.draw_fanouts_once(view, {inp.name for inp in model.inputs if inp.kind == "sample"})
    fold.mark_skips(view, {inp.name for inp in model.inputs if inp.kind == "sample"})
    view.legend = fold.legend_rows(view)
    return view


class _Builder:
    def __init__(self, model, folding: _Folding, lines: dict):
        from diffc.methods import methods_in_order
        self.model, self.folding, self.lines = model, folding, lines
        self.methods = methods_in_order()   # each method's look: node fills, block labels, extra edges
        self.nodes: dict[str, ViewNode] = {}
        self.edges: list[ViewEdge] = []
        self.root = Cluster("", model.name, "root")
        self.clusters = {"": self.root}
        self.inputs = {inp.node.name: inp for inp in model.inputs}

    def source(self, loc) -> str:
        text = self.lines.get(loc.file, [])
        return text[loc.line - 1].strip() if 1 <= loc.line <= len(text) else ""

    # nodes ---------------------------------------------------------------------------------------------
    def add_node(self, view_id: str, group: list) -> None:
        first = group[0]
        region = self.folding.repeat_of.get(first.name)
        if region is not None:
            view = self._folded(view_id, region)
        elif first.name in self.inputs:
            view = self._input(self.inputs[first.name])
        else:
            view = self._block(view_id, group)
        self.nodes[view_id] = view
        self._cluster_for(first, region).nodes.append(view_id)

    def _block(self, view_id: str, group: list) -> ViewNode:
        node = group[0]
        block = next((b for m in self.methods if (b := m.block_label(node)) is not None), node.block)
        shapes = list(dict.fromkeys(" ".join(fmt(s) for s in n.out_shapes or ()) for n in group))
        own = [annotation_text(u) for u in _unique(node.annotations)
               if u.target_kind == "block" and u.name not in ("sync", "stage")]
        return ViewNode(view_id, view_id, block, "block", " | ".join(shapes), node.loc.file, node.loc.line,
                        self.source(node.loc), own, self.fill(node))

    def _folded(self, view_id: str, region) -> ViewNode:
        first = next(it for it in region.iterations if it)
        blocks = ", ".join(dict.fromkeys(n.block for n in first))
        shape = " ".join(fmt(s) for s in first[-1].out_shapes or ())
        badges = [annotation_text(u) for u in region.annotations if u.name != "sync"]
        partial = _partial_badges(region.iterations, set(badges))
        fills = [fill for it in region.iterations for fill in map(self.fill, it) if fill != FILLS["block"]]
        fill = fills[0] if fills else FILLS["folded"]
        return ViewNode(view_id, view_id, blocks, "folded", shape, region.loc.file, region.loc.line,
                        self.source(region.loc), badges + partial, fill, count=len(region.iterations),
                        partial=bool(partial))

    def _input(self, inp) -> ViewNode:
        badges = [annotation_text(u) for u in inp.annotations]
        return ViewNode(inp.name, inp.name, inp.kind, "input", fmt(inp.dims), inp.loc.file, inp.loc.line,
                        self.source(inp.loc), badges, FILLS["input"])

    def add_outputs(self) -> None:
        for i, wire in enumerate(self.model.outputs):
            out_id = "prediction" if i == 0 else f"aux {i}"
            loc = wire.node.loc
            self.nodes[out_id] = ViewNode(out_id, out_id, "output", "output", "", loc.file, loc.line,
                                          self.source(loc), fill=FILLS["output"])
            self.root.nodes.append(out_id)
            self.edges.append(ViewEdge(self.folding.view_id(wire.node.name), out_id, _shape(wire.node, wire.port)))

    # edges ---------------------------------------------------------------------------------------------
    def add_data_edges(self, graph) -> None:
        labels: dict[tuple, list] = {}
        for src, dst, data in graph.edges(data=True):
            a, b = self.folding.view_id(src), self.folding.view_id(dst)
            if a != b:
                labels.setdefault((a, b), []).append(_shape(graph.nodes[src]["ir"], data["out"]))
        for (a, b), shapes in labels.items():
            self.edges.append(ViewEdge(a, b, " | ".join(dict.fromkeys(shapes))))

    def fill(self, node) -> str:
        """The first method colour claiming the node (pass order), else a plain block."""
        return next((f for m in self.methods if (f := m.node_fill(node)) is not None), FILLS["block"])

    def add_method_edges(self) -> None:
        for method in self.methods:
            for src, dst, head, tail in method.graph_edges(self.model):
                a, b = self.folding.view_id(src), self.folding.view_id(dst)
                pair = f" {src} -> {dst}" if a == b else ""     # both ends folded into one node
                self.edges.append(ViewEdge(a, b, f"{head}{pair} {tail}", sync=True))

    # clusters ------------------------------------------------------------------------------------------
    def _cluster_for(self, node, folded_region) -> Cluster:
        """The innermost cluster of `node`, creating its chain; a folded repeat sits beside its loop."""
        cluster, parts = self.root, []
        stop = self.folding.canonical(folded_region.label) if folded_region is not None else None
        for frame in node.scopes:
            steps = [(frame.label, frame.kind)]
            if frame.index is not None:
                steps.append((str(frame.index), "iteration"))
            for part, kind in steps:
                parts.append(part)
                raw = ".".join(parts)
                path = self.folding.canonical(raw)
                if path == stop:
                    return cluster
                if path not in self.clusters:
                    child = self._new_cluster(path, raw, kind, frame)
                    self.clusters[path] = child
                    cluster.children.append(child)
                cluster = self.clusters[path]
        return cluster

    def _new_cluster(self, path: str, raw: str, kind: str, frame) -> Cluster:
        where = f"{frame.loc.file}:{frame.loc.line}" if frame.loc is not None else ""
        if kind == "iteration":
            return self._iteration_cluster(path, raw, frame, where)
        region = self.model.regions.get(raw)
        badges = [annotation_text(u) for u in region.annotations if u.name != "sync"] if region else []
        if kind == "composite":
            label = f"{path}: {frame.block}"
        elif kind == "repeat":
            label = f"{path}: repeat x{len(region.iterations)}" if region else f"{path}: repeat"
        elif kind == "for":
            label = f"{path}: for"
        else:
            label = path
        return Cluster(path, " ".join([label, *badges]), kind, where)

    def _iteration_cluster(self, path: str, raw: str, frame, where: str) -> Cluster:
        """A loop iteration, or a method's copy of a region (e.g. a @stage copy) drawn the method's way."""
        for method in self.methods:
            look = method.cluster_look(frame, raw, path, self.model)
            if look is not None:
                return Cluster(path, look[0], frame.kind, where, look[1])
        return Cluster(path, path, "iteration", where)


def _prune(cluster: Cluster) -> None:
    """Dissolve loop iterations holding a single item: their loop cluster already says enough."""
    children = []
    for child in cluster.children:
        _prune(child)
        if child.kind == "iteration" and len(child.nodes) + len(child.children) <= 1:
            cluster.nodes.extend(child.nodes)
            children.extend(child.children)
        else:
            children.append(child)
    cluster.children = children


def _partial_badges(iterations: list, whole: set) -> list:
    """`@route(0.8, 4.0) on [0:4] (4 of 28)` for each annotation that only some iterations carry."""
    carried: dict[str, list] = {}
    for index, nodes in enumerate(iterations):
        texts = {annotation_text(u) for n in nodes for u in n.annotations if u.name not in ("sync", "stage")}
        for text in texts - whole:
            carried.setdefault(text, []).append(index)
    return [f"{text} on {index_ranges(found)} ({len(found)} of {len(iterations)})"
            for text, found in carried.items() if len(found) < len(iterations)]


def index_ranges(indices: list) -> str:
    """[0, 1, 2, 3] -> `[0:4]`; [1] -> `[1]`; [0, 2, 5] -> `[0, 2, 5]` (0-based, slice ends exclusive)."""
    if len(indices) > 1 and indices == list(range(indices[0], indices[-1] + 1)):
        return f"[{indices[0]}:{indices[-1] + 1}]"
    return "[" + ", ".join(map(str, indices)) + "]"


def _unique(uses) -> list:
    return list({id(u): u for u in uses}.values())


def _shape(node, port: int) -> str:
    shapes = node.out_shapes or ()
    return fmt(shapes[port]) if port < len(shapes) else ""
