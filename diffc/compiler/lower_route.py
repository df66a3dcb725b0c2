"""Lowering of `@route` (DTR, Park et al. ICLR 2024, Eq. 4): mark routable blocks with their mask spec.

Every routable block under a @route (DiT blocks, U-Net residual blocks; attention blocks only with
`attention = true`) reads m_t * x on its residual branch; the emitter builds one [T, C] table per width.
"""
from __future__ import annotations

from diffc.compiler.ir import nodes_in_order
from diffc.errors import fail
from diffc.registry import REGISTRY
from diffc.registry.shapes import channels


def mask_starts(channels_: int, window: float, weight: float, tasks: int) -> list[int]:
    """Window start per task: round((t / (T-1))^alpha * (C - floor(C beta))) (DTR released code, dtr.md)."""
    active = int(channels_ * window)
    travel = channels_ - active
    return [round((t / (tasks - 1)) ** weight * travel) if tasks > 1 else 0 for t in range(tasks)]


def lower_route(graph) -> None:
    covered: dict[int, bool] = {}
    for node in nodes_in_order(graph):
        uses = [a for a in node.annotations if a.name == "route"]
        if not uses or node.block in ("input", "stage_merge"):
            continue
        if len({id(u) for u in uses}) > 1:
            first, second = uses[0], uses[1]
            raise fail(f"'{node.name}' is routed twice: @route at line {first.loc.line} and line {second.loc.line}",
                       second.loc, help="keep one @route per block (an overlay on a model that already routes "
                       "replaces nothing)")
        use = uses[0]
        covered.setdefault(id(use), False)
        tags = REGISTRY.block(node.block).tags
        if "routable" in tags or ("routable_attention" in tags and use.params.attention):
            node.route = use.params
            node.context["route_channels"] = channels(node.in_shapes[REGISTRY.block(node.block).inputs[0]])
            covered[id(use)] = True
    model = graph.graph["model"]
    for use in model.annotations:
        if use.name == "route" and covered.get(id(use)) is False:
            routable = sorted(n for n, b in REGISTRY.blocks.items() if "routable" in b.tags)
            raise fail(f"@route on '{use.target}' covers no routable block", use.loc,
                       help="routable blocks: " + ", ".join(routable))
