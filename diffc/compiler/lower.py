"""The lowering pipeline: each method annotation is a pass that rewrites or marks the IR."""
from __future__ import annotations

from diffc.compiler.ir import Wire
from diffc.compiler.lower_mp import lower_mp
from diffc.compiler.lower_route import lower_route
from diffc.compiler.lower_sync import lower_sync
from diffc.errors import fail


def lower_taps(graph) -> None:
    model = graph.graph["model"]
    for node in graph.nodes.values():
        for use in (a for a in node["ir"].annotations if a.name == "tap"):
            if use.params.name in model.taps:
                raise fail(f"tap '{use.params.name}' is defined twice", use.loc)
            model.taps[use.params.name] = Wire(node["ir"])


PASSES = (lower_mp, lower_route, lower_sync, lower_taps)


def lower(graph):
    for run in PASSES:
        run(graph)
    return graph
