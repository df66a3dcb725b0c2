"""`diffc train --dry-run`: model summary and a memory estimate per process."""
from __future__ import annotations

import torch


def _activation_bytes(module, interface, batch: int) -> int:
    """Bytes of every module output for a forward pass of 2 samples, scaled to `batch` (what autograd keeps)."""
    sizes = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(
        sum(t.numel() * t.element_size() for t in (out if isinstance(out, (tuple, list)) else [out])
            if isinstance(t, torch.Tensor)))) for m in module.modules()]
    try:
        level = torch.full((2,), 0.5 if interface.noise.kind != "timestep" else 1.0)
        with torch.no_grad():
            module(torch.zeros(2, *interface.sample_shape), level, {})
    finally:
        for hook in hooks:
            hook.remove()
    return sum(sizes) * batch // 2


def describe(built, recipe, world_size: int = 1) -> str:
    module, interface = built.module, built.interface
    params = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    buffers = sum(b.numel() * b.element_size() for b in module.buffers())
    emas = len(recipe.ema.sigma_rel) if recipe.ema.kind == "power" else int(recipe.ema.kind == "classic")
    batch_gpu = recipe.batch_per_gpu or recipe.batch // world_size
    weights = params * 4
    state = weights + trainable * 4 * 3 + weights * emas + buffers          # model, grads, Adam m and v, EMAs
    acts = _activation_bytes(module, interface, batch_gpu)
    mib = lambda b: f"{b / 2 ** 20:,.1f} MiB"  # noqa: E731
    lines = [
        f"model:        {built.model_name} from {built.spec_path} (spec sha256 {built.spec_hash[:12]})",
        f"samples:      {tuple(interface.sample_shape)} -> {interface.out_channels} output channels; "
        f"noise input '{interface.noise.name}' ({interface.noise.kind})",
        "conditions:   " + (", ".join(f"{c.name} ({c.kind} {list(c.dims)}, drop {c.dropout})"
                                      for c in interface.conditions) or "none"),
        f"parameters:   {params:,} ({trainable:,} trainable)",
        f"steps:        {recipe.duration.images(recipe.batch) // recipe.batch:,} of {recipe.batch} images "
        f"({batch_gpu} per process, {recipe.batch // (batch_gpu * world_size)} accumulation rounds)",
        f"memory/proc:  weights+grads+Adam+{emas} EMA {mib(state)}, activations ~{mib(acts)} "
        f"(float32, batch {batch_gpu}), total ~{mib(state + acts)}",
    ]
    return "\n".join(lines)
