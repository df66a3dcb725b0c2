"""Training-efficiency methods as plug-ins: one module per method, registered like blocks.

A method gives one or more annotations their meaning. It is a `Method` subclass registered with
`@method(name, implements=(...), before=(...), after=(...))` (diffc.registry), in this package or in a
plug-in package through the `diffc.methods` (or `diffc.blocks`) entry-point group. Its hooks:

  compile time (plain Python, no torch: `diffc check`, `graph`, `fmt`, `blocks` must not import it)
    lower(graph)              rewrite or mark the IR; per-node facts go in `Node.meta` (diffc.compiler.ir)
    summary(compiled, module) lines for `diffc compile` (module on the meta device; torch may be imported here)
    node_fill(node)           a colour for the node in `diffc graph`, or None (the first method's wins)
    block_label(node)         the block text `diffc graph` shows for the node, or None
    legend()                  (annotation, fill, meaning) for the graph legend, or None
    cluster_look(frame, raw, path, model)  (label, fill) of a copy of a region the method made, or None
    graph_edges(model)        extra (src node, dst node, label head, label tail) edges for `diffc graph`

  run time (code emission hooks, called by diffc.compiler.codegen while it writes the forward; listed there)

Pass order: the compiler runs every registered method's `lower` in the topological order of the
before/after declarations (networkx), ties broken by method name; a name no installed method has is
ignored, so a plug-in may order itself against an optional one. An order that cannot be met is an error
naming both methods. An annotation used in a spec that no method implements is an error at its line.
"""
from __future__ import annotations

import networkx as nx

from diffc.errors import UserError, fail
from diffc.registry import REGISTRY

# Annotations that the compiler reads itself, while building inputs (diffc.compiler.inputs): no method pass.
INPUT_ANNOTATIONS = ("drop", "control")


class Method:
    """Base class of a method; every hook is optional."""

    def lower(self, graph) -> None:
        """Rewrite or mark the IR: graph.nodes[name]["ir"] is a Node, graph.graph["model"] the ModelIR."""

    def summary(self, compiled, module) -> list[str]:
        return []

    def node_fill(self, node) -> str | None:
        return None

    def block_label(self, node) -> str | None:
        return None

    def legend(self) -> tuple[str, str, str] | None:
        return None

    def cluster_look(self, frame, raw: str, path: str, model) -> tuple[str, str] | None:
        return None

    def graph_edges(self, model) -> list[tuple[str, str, str, str]]:
        return []


def pass_order(registry=REGISTRY) -> list:
    """MethodInfos in the order their passes run (before/after constraints, then name)."""
    methods = registry.load().methods
    order = nx.DiGraph()
    order.add_nodes_from(methods)
    for info in methods.values():
        order.add_edges_from((info.name, other) for other in info.before if other in methods)
        order.add_edges_from((other, info.name) for other in info.after if other in methods)
    try:
        return [methods[name] for name in nx.lexicographical_topological_sort(order)]
    except nx.NetworkXUnfeasible:
        cycle = [a for a, _ in nx.find_cycle(order)]
        first, second = cycle[0], cycle[1 % len(cycle)]
        raise UserError(f"method passes cannot be ordered: '{first}' ({methods[first].origin}) must run before "
                        f"'{second}' ({methods[second].origin}), and '{second}' before '{first}'"
                        + (f" (through {' -> '.join(cycle)})" if len(cycle) > 2 else ""),
                        help="change the before=/after= declarations of one of these methods") from None


def methods_in_order(registry=REGISTRY) -> list[Method]:
    return [info.cls() for info in pass_order(registry)]


def check_implemented(model, registry=REGISTRY) -> None:
    """A located error for the first annotation that is registered but that no method implements."""
    for use in model.annotations:
        if use.name in INPUT_ANNOTATIONS or registry.implementer(use.name) is not None:
            continue
        info = registry.annotation(use.name)
        origin = f" by '{info.origin}'" if info is not None and info.origin != "diffc" else ""
        raise fail(f"@{use.name} is registered{origin} but no method implements it, so it would do nothing",
                   use.loc, help="install the plug-in that provides the method, or remove the annotation")
