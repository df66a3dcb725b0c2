"""Lowering of `@mp` (EDM2, Karras et al. CVPR 2024, Sec. 3): MP forms inside the region, then a lint.

Blocks with a registered magnitude-preserving form (conv -> mp_conv, silu -> mp_silu, add -> mp_sum,
cat -> mp_cat ...) are substituted unless `@mp(strict = true)`; anything still not tagged "mp" is
rejected with a located error, and so is an explicitly requested bias.
"""
from __future__ import annotations

import attrs

from diffc.compiler.ir import nodes_in_order
from diffc.errors import fail
from diffc.registry import REGISTRY


def lower_mp(graph) -> None:
    for node in nodes_in_order(graph):
        uses = [a for a in node.annotations if a.name == "mp"]
        if not uses or node.block in ("input", "stage_merge"):
            continue
        use = uses[-1]
        where = f"@mp (line {use.loc.line})"
        if node.context.get("kwargs", {}).get("bias") is True:
            raise fail(f"'{node.name}' asks for a bias inside {where}; EDM2 networks have no biases",
                       node.arg_locs.get("bias", node.loc), help="drop `bias = true` (the input's ones-channel "
                       "replaces biases, EDM2 Sec. 3)")
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


def _substitute(node, mp_info) -> None:
    """Rebuild the node's parameters for the MP form from the fields both blocks share."""
    fields = {f.name for f in attrs.fields(mp_info.params)}
    given = {k: v for k, v in node.context.get("kwargs", {}).items() if k in fields}
    node.context["mp_from"] = node.block
    node.block = mp_info.name
    node.params = mp_info.params(**given)
