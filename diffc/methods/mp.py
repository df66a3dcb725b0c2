"""`@mp`: EDM2's magnitude-preserving network (Karras et al., CVPR 2024, Sec. 3).

Blocks with a registered magnitude-preserving form (conv -> mp_conv, silu -> mp_silu, add -> mp_sum,
cat -> mp_cat ...) are substituted unless `@mp(strict = true)`; anything still not tagged "mp" is
rejected with a located error, and so is an explicitly requested bias. The MP blocks themselves
(diffc.blocks.mp) implement Eq. 47-103; this pass only chooses them.
"""
from __future__ import annotations

import attrs

from diffc.compiler.ir import nodes_in_order
from diffc.errors import fail
from diffc.methods import Method
from diffc.registry import REGISTRY, annotation, method

FILL = "#d3efd6"


@annotation("mp", targets={"model", "block", "repeat", "region"}, positional=("strict",))
class MagnitudePreserving:
    """EDM2 magnitude-preserving layers (Karras et al., CVPR 2024, Sec. 3, Eq. 47-103)."""
    strict: bool = False      # true: reject non-MP blocks instead of substituting their MP forms


@method("mp")
class MagnitudePreservingMethod(Method):
    """EDM2 magnitude-preserving layers (Karras et al., CVPR 2024, Sec. 3): substitution and lint."""

    def lower(self, graph) -> None:
        for node in nodes_in_order(graph):
            uses = [a for a in node.annotations if a.name == "mp"]
            if not uses or node.block in ("input", "stage_merge"):
                continue
            use = uses[-1]
            where = f"@mp (line {use.loc.line})"
            if node.meta.get("kwargs", {}).get("bias") is True:   # EDM2 Sec. 3: no biases, a ones-channel instead
                raise fail(f"'{node.name}' asks for a bias inside {where}; EDM2 networks have no biases",
                           node.arg_locs.get("bias", node.loc), help="drop `bias = true` (the input's "
                           "ones-channel replaces biases, EDM2 Sec. 3)")
            info = REGISTRY.block(node.block)
            if "mp" in info.tags:
                continue
            if info.mp_form and not use.params.strict:
                _substitute(node, REGISTRY.block(info.mp_form))
                continue
            hint = f"use {info.mp_form}" if info.mp_form else "MP blocks: " + ", ".join(
                sorted(n for n, b in REGISTRY.blocks.items() if "mp" in b.tags))
            raise fail(f"'{node.name}' uses {node.block}, which is not magnitude-preserving, inside {where}",
                       node.loc, help=hint)

    def node_fill(self, node) -> str | None:
        return FILL if any(u.name == "mp" for u in node.annotations) else None

    def legend(self):
        return "mp", FILL, "@mp: EDM2 magnitude-preserving (Karras et al. 2024)"

    def block_label(self, node) -> str | None:
        return f"{node.block} (from {node.meta['mp_from']})" if "mp_from" in node.meta else None


def _substitute(node, mp_info) -> None:
    """Rebuild the node's parameters for the MP form from the fields both blocks share."""
    fields = {f.name for f in attrs.fields(mp_info.params)}
    given = {k: v for k, v in node.meta.get("kwargs", {}).items() if k in fields}
    node.meta["mp_from"] = node.block
    node.block = mp_info.name
    node.params = mp_info.params(**given)
