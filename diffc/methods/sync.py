"""`@sync(src -> dst, weight)`: LayerSync (Haghighi et al. 2025).

Integers are depths in the annotated repeat, counted as LayerSync's reference code counts `--encoder-depth`:
depth d is the output after d blocks, node `blocks.{d-1}` (so `--encoder-depth 8 --gt-encoder-depth 16` is
`@sync(8 -> 16) blocks`, the same pair as `@sync(blocks.7 -> blocks.15)`); names are node paths, 0-based
like every index in diffc (docs/language.md, "Node names, state_dict keys and numbering"). Each pair becomes one
aux loss term, weighted by lambda in the training loss: -cos(src, stopgrad(dst)) per token, mean over batch
and tokens (Eq. 3). The loss reaches training through `interface.aux_losses` (name -> weight).
"""
from __future__ import annotations

import attrs
import networkx as nx

from diffc.compiler.ir import Wire
from diffc.errors import did_you_mean, fail
from diffc.methods import Method
from diffc.registry import Link, annotation, method
from diffc.registry.shapes import fmt
from diffc.registry.validators import non_negative


@annotation("sync", targets={"model", "repeat", "region"}, variadic="pairs")
class Sync:
    """LayerSync (Haghighi et al., 2025, Eq. 3): negative cosine between a layer and a stop-gradient deeper layer."""
    pairs: list[Link] = attrs.Factory(list)                           # student -> teacher (depths in a repeat)
    weight: float = attrs.field(default=0.2, validator=non_negative)  # lambda


@method("sync", after=("mp",))
class SyncMethod(Method):
    """LayerSync (Haghighi et al., 2025): each pair becomes a weighted aux loss tap."""

    def lower(self, graph) -> None:
        model = graph.graph["model"]
        for use in (a for a in model.annotations if a.name == "sync"):
            if not use.refs:
                raise fail("@sync needs at least one pair, e.g. @sync(8 -> 16)", use.loc)
            for src_ref, dst_ref, loc in use.refs:
                src, dst = _node(graph, model, use, src_ref, loc), _node(graph, model, use, dst_ref, loc)
                if src is dst:
                    raise fail(f"@sync pair {src_ref} -> {dst_ref} names the same layer '{src.name}' twice; "
                               "the loss would be constant -1", loc,
                               help="the guide (right side) must be a deeper layer")
                if not nx.has_path(graph, src.name, dst.name):
                    raise fail(f"@sync guide '{dst.name}' does not come after '{src.name}'", loc,
                               help="write the weaker (shallower) layer on the left: shallow -> deep")
                a, b = src.out_shapes[0], dst.out_shapes[0]
                if tuple(a) != tuple(b):
                    raise fail(f"@sync cannot compare '{src.name}' {fmt(a)} with '{dst.name}' {fmt(b)}", loc,
                               help="LayerSync aligns features of equal shape, token by token")
                if "stage" in src.meta or "stage" in dst.meta:
                    raise fail("@sync layers must lie outside @stage regions (their batches are split)", loc)
                key = "layersync" if len(use.refs) == 1 else f"layersync/{src.name}->{dst.name}"
                model.taps[key] = (Wire(src), Wire(dst))
                model.aux_losses[key] = use.params.weight

    def summary(self, compiled, module) -> list[str]:
        return [f"aux loss {key}: weight {weight} (LayerSync, no parameters added)"
                for key, weight in compiled.interface.aux_losses.items() if key.startswith("layersync")]

    def graph_edges(self, model) -> list[tuple[str, str, str, str]]:
        """A dashed edge per pair: (src node, dst node, label head, label tail)."""
        return [(tap[0].node.name, tap[1].node.name, "@sync", f"weight {model.aux_losses.get(key)}")
                for key, tap in model.taps.items() if key.startswith("layersync")]

    # ---- run time: code the forward generator (diffc.compiler.codegen) emits --------------------------
    def aux(self, gen, key: str, tap) -> str | None:
        """-cos(src, stopgrad(dst)) over channels, per token, mean over batch and tokens (Eq. 3)."""
        if not (key.startswith("layersync") and isinstance(tap, tuple)):      # another method's entry
            return None
        src, dst = tap
        a, b = gen.values[(src.node.name, src.port)], gen.values[(dst.node.name, dst.port)]
        dim = 1 if len(src.node.out_shapes[src.port]) == 3 else -1
        return f"-F.cosine_similarity({a}, {b}.detach(), dim={dim}).mean()"


def _node(graph, model, use, ref, loc):
    if isinstance(ref, int):
        region = model.regions.get(use.target)
        if region is None or region.kind not in ("repeat", "for"):
            raise fail(f"depth {ref} needs @sync on a repeat (e.g. `@sync(8 -> 16) blocks`)", loc,
                       help="or name nodes: @sync(blocks.7 -> blocks.15)")
        if not 1 <= ref <= len(region.iterations):
            count = len(region.iterations)
            raise fail(f"@sync depth {ref} is out of range: '{region.label}' has {count} layers, so depths run "
                       f"from 1 to {count} (depth d is the output after d layers, node {region.label}.{{d-1}})", loc,
                       help=f"or name nodes: @sync({region.label}.0 -> {region.label}.{max(count - 1, 0)})")
        iteration = region.iterations[ref - 1]
        return iteration[-1]
    if ref in graph.nodes:
        return graph.nodes[ref]["ir"]
    if ref in model.regions and model.regions[ref].nodes():
        return model.regions[ref].nodes()[-1]
    raise fail(f"@sync: no layer named '{ref}'", loc, help=did_you_mean(ref, list(graph.nodes) + list(model.regions)))
