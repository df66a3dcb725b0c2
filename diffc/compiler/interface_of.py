"""Derive the plain-Python ModelInterface (diffc.interface) from a checked, lowered IR."""
from __future__ import annotations

from diffc.interface import Condition, ModelInterface, NoiseInput

NOISE = ("timestep", "time", "sigma")


def interface_of(graph) -> ModelInterface:
    model = graph.graph["model"]
    sample = next(i for i in model.inputs if i.kind == "sample")
    noise_in = next(i for i in model.inputs if i.kind in NOISE)
    schedule = noise_in.options.get("schedule") or noise_in.options.get("path") or "linear"
    noise = NoiseInput(noise_in.name, noise_in.kind, noise_in.dims[0] if noise_in.dims else None, schedule)
    conditions = []
    for inp in model.inputs:
        if inp.kind not in ("label", "text", "control"):
            continue
        drop = next((u.params.p for u in inp.annotations if u.name == "drop"), 0.0)
        control = inp.kind == "control" or any(u.name == "control" for u in inp.annotations)
        conditions.append(Condition(inp.name, inp.kind, tuple(inp.dims), drop, "control" if control else "semantic"))
    pred = model.outputs[0].node.out_shapes[model.outputs[0].port]
    # (unit, value) pairs, stage 0 = lowest noise; diffc.methods.stage checked that all regions share them
    stages = tuple(("logsnr", b) for b in model.stage_regions[0]["boundaries"]) if model.stage_regions else ()
    return ModelInterface(tuple(sample.dims), pred[0], noise, tuple(conditions), dict(model.aux_losses), stages)
