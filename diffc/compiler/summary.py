"""`diffc compile`'s report: per-node output shape, parameters and FLOPs, plus each method's lines.

FLOPs are counted on the meta device (no weights allocated) with torch.utils.flop_counter at batch 1,
and reported as multiply-accumulates (MACs = counted FLOPs / 2), the convention of DiT's "Gflops" and
EDM2's tables (elementwise ops are not counted).
"""
from __future__ import annotations

import re

import attrs
import torch
from torch.utils.flop_counter import FlopCounterMode

from diffc.compiler.ir import nodes_in_order
from diffc.registry.shapes import fmt


@attrs.define
class Row:
    name: str
    block: str
    shape: str
    params: int
    macs: int
    count: int = 1
    line: int = 0


def dummy_inputs(interface, device, batch: int = 1):
    x = torch.zeros(batch, *interface.sample_shape, device=device)
    noise = {"timestep": 0.0, "time": 0.5, "sigma": 1.0}[interface.noise.kind]
    t = torch.full((batch,), noise, device=device)
    cond = {}
    for c in interface.conditions:
        if c.kind == "label":
            cond[c.name] = torch.zeros(batch, dtype=torch.long, device=device)
        else:
            cond[c.name] = torch.zeros(batch, *c.dims, device=device)
    return x, t, cond


def count_macs(module, interface, stage: int | None = None) -> dict[str, int]:
    """MACs per module path ("" = whole model) for one sample; `stage` forces every sample into that stage."""
    x, t, cond = dummy_inputs(interface, "meta")
    module.force_stage = stage
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(x, t, cond)
    finally:
        module.force_stage = None
    root = type(module).__name__
    out = {}
    for key, ops in counter.get_flop_counts().items():
        path = "" if key in (root, "Global") else key[len(root) + 1:]
        out[path] = sum(ops.values()) // 2
    return out


def node_params(module, name: str) -> int:
    try:
        return sum(p.numel() for p in module.get_submodule(name).parameters())
    except AttributeError:
        try:
            return module.get_parameter(name).numel()
        except AttributeError:
            return 0


def summary_rows(compiled, module, fold: bool = True) -> tuple[list[Row], dict]:
    stages = len(compiled.interface.stages) + 1 if compiled.interface.stages else 0
    macs = count_macs(module, compiled.interface, 0 if stages else None)
    rows: dict[str, Row] = {}
    for node in nodes_in_order(compiled.graph):
        if node.block == "input":
            continue
        key = _fold_key(node) if fold else node.name
        row = rows.get(key)
        params, flops = node_params(module, node.name), macs.get(node.name, 0)
        shape = fmt(node.out_shapes[0]) if node.out_shapes else "?"
        if row is None:
            rows[key] = Row(key, node.block, shape, params, flops, 1, node.loc.line)
        else:
            row.params += params
            row.macs += flops
            row.count += 1
    totals = {"params": sum(p.numel() for p in module.parameters()),
              "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad),
              "buffers": sum(b.numel() for b in module.buffers()), "macs": macs.get("", 0)}
    return list(rows.values()), totals


def _fold_key(node) -> str:
    repeat = next((f for f in node.scopes if f.kind == "repeat"), None)
    if repeat is None:
        return node.name
    return re.sub(rf"(^|\.){re.escape(repeat.label)}\.{repeat.index}(\.|$)", rf"\1{repeat.label}.*\2", node.name, count=1)


def method_lines(compiled, module) -> list[str]:
    """Each method's own lines (DTR tables, per-stage MACs, LayerSync losses, plug-ins), in pass order."""
    from diffc.methods import methods_in_order
    return [line for method in methods_in_order() for line in method.summary(compiled, module)]


def format_table(rows: list[Row], totals: dict, model_name: str) -> str:
    header = ("node", "block", "output", "params", "MACs")
    body = [(r.name + (f"  x{r.count}" if r.count > 1 else ""), r.block, r.shape, f"{r.params:,}",
             _human(r.macs)) for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    out = [f"model {model_name}", line(header), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    out.append(line(["-" * w for w in widths]))
    out.append(f"parameters: {totals['params']:,} (trainable {totals['trainable']:,}); buffers: {totals['buffers']:,}")
    out.append(f"MACs per sample: {totals['macs'] / 1e9:.3f} G  (multiply-accumulates = FLOPs/2 from "
               "torch.utils.flop_counter, batch 1; elementwise ops not counted)")
    return "\n".join(out)


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)
