"""Lowering of `@sync(src -> dst, weight)` (LayerSync, Haghighi et al. 2025, Eq. 3) into feature taps.

Integers are 1-based positions in the annotated repeat (LayerSync's `--encoder-depth 8
--gt-encoder-depth 16` is `@sync(8 -> 16) blocks`); names are node paths (blocks.7). Each pair becomes one
aux loss term, weighted by lambda: -cos(src, stopgrad(dst)) per token, mean over batch and tokens.
"""
from __future__ import annotations

import networkx as nx

from diffc.compiler.ir import Wire
from diffc.errors import did_you_mean, fail
from diffc.registry.shapes import fmt


def lower_sync(graph) -> None:
    model = graph.graph["model"]
    for use in (a for a in model.annotations if a.name == "sync"):
        if not use.refs:
            raise fail("@sync needs at least one pair, e.g. @sync(8 -> 16)", use.loc)
        for src_ref, dst_ref, loc in use.refs:
            src, dst = _node(graph, model, use, src_ref, loc), _node(graph, model, use, dst_ref, loc)
            if src is dst:
                raise fail(f"@sync pair {src_ref} -> {dst_ref} names the same layer '{src.name}' twice; "
                           "the loss would be constant -1", loc, help="the guide (right side) must be a deeper layer")
            if not nx.has_path(graph, src.name, dst.name):
                raise fail(f"@sync guide '{dst.name}' does not come after '{src.name}'", loc,
                           help="write the weaker (shallower) layer on the left: shallow -> deep")
            a, b = src.out_shapes[0], dst.out_shapes[0]
            if tuple(a) != tuple(b):
                raise fail(f"@sync cannot compare '{src.name}' {fmt(a)} with '{dst.name}' {fmt(b)}", loc,
                           help="LayerSync aligns features of equal shape, token by token")
            if src.stage is not None or dst.stage is not None:
                raise fail("@sync layers must lie outside @stage regions (their batches are split)", loc)
            key = "layersync" if len(use.refs) == 1 else f"layersync/{src.name}->{dst.name}"
            model.taps[key] = (Wire(src), Wire(dst))
            model.aux_losses[key] = use.params.weight


def _node(graph, model, use, ref, loc):
    if isinstance(ref, int):
        region = model.regions.get(use.target)
        if region is None or region.kind not in ("repeat", "for"):
            raise fail(f"layer number {ref} needs @sync on a repeat (e.g. `@sync(8 -> 16) blocks`)", loc,
                       help="or name nodes: @sync(blocks.7 -> blocks.15)")
        if not 1 <= ref <= len(region.iterations):
            raise fail(f"@sync layer {ref} is out of range: '{region.label}' has {len(region.iterations)} "
                       "layers (numbered from 1)", loc)
        iteration = region.iterations[ref - 1]
        return iteration[-1]
    if ref in graph.nodes:
        return graph.nodes[ref]["ir"]
    if ref in model.regions and model.regions[ref].nodes():
        return model.regions[ref].nodes()[-1]
    raise fail(f"@sync: no layer named '{ref}'", loc, help=did_you_mean(ref, list(graph.nodes) + list(model.regions)))
