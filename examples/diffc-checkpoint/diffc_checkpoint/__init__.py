"""`@checkpoint`: activation checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost").

Each module call under the annotation runs inside torch.utils.checkpoint (non-reentrant): only the call's
inputs are kept for backward, where its forward is run again to rebuild the activations (Sec. 3: memory of
the stored segment boundaries plus one segment, for one extra forward). Dropout draws the same numbers both
times (the RNG state is restored), so outputs and gradients equal the plain model's.

Written only against diffc's method API: this module must import without torch (`diffc check` loads it).
"""
from __future__ import annotations

from diffc.methods import Method
from diffc.registry import REGISTRY, annotation, method

FILL = "#dcd6f7"
META = "checkpoint"             # Node.meta key this method owns


@annotation("checkpoint", targets={"block", "repeat", "region"})
class Checkpoint:
    """Activation checkpointing (Chen et al. 2016, Sec. 3): recompute the blocks' activations in backward."""


@method("checkpoint", after=("mp", "route", "stage"))
class CheckpointMethod(Method):
    """Activation checkpointing (Chen et al. 2016): wraps each annotated module call in torch.utils.checkpoint."""

    def lower(self, graph) -> None:
        for node in (n["ir"] for n in graph.nodes.values()):
            info = REGISTRY.block(node.block)
            if info is None or "param" in info.tags:        # inputs, stage merges, bare weights: no call
                continue
            if any(u.name == "checkpoint" for u in node.annotations):
                node.meta[META] = True

    def summary(self, compiled, module) -> list[str]:
        wrapped = sum(1 for n in compiled.graph.nodes.values() if n["ir"].meta.get(META))
        return [f"@checkpoint: {wrapped} block calls recompute their activations in backward "
                "(torch.utils.checkpoint, non-reentrant; no parameters added)"] if wrapped else []

    def node_fill(self, node) -> str | None:
        return FILL if node.meta.get(META) else None

    def legend(self):
        return "checkpoint", FILL, "@checkpoint: activations recomputed in backward (Chen et al. 2016)"

    # ---- run time: the generated forward calls checkpoint(fn, *args, use_reentrant=False, **kwargs) ----
    def keeps_call(self, node) -> bool:
        return bool(node.meta.get(META))

    def wrap_call(self, gen, node, fn: str, args: list[str]):
        if not node.meta.get(META):
            return None
        return "activation_checkpoint", [fn, *args, "use_reentrant=False"]

    def runtime_names(self) -> dict:
        from torch.utils.checkpoint import checkpoint
        return {"activation_checkpoint": checkpoint}
