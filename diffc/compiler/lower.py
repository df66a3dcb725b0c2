"""The lowering pipeline: every registered method's pass, in the order derived from before/after (diffc.methods)."""
from __future__ import annotations

from diffc.methods import check_implemented, methods_in_order


def lower(graph):
    check_implemented(graph.graph["model"])
    for method in methods_in_order():
        method.lower(graph)
    return graph
