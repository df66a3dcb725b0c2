"""`diffc train --dry-run`: model summary and a memory estimate per process."""
from __future__ import annotations

import os
from pathlib import Path

import attrs
import torch

from diffc.errors import UserError


def _activation_bytes(module, interface, batch: int) -> int:
    """Bytes of every module output for a forward pass of 2 samples, scaled to `batch` (what autograd keeps).
    On a meta-device module (the dry run) nothing is computed or allocated: only shapes propagate; there a
    multi-stage model cannot split the batch by value, so every stage is sized for the whole batch (an upper bound)."""
    import torch.fx.experimental._config as fx_config

    from diffc.compiler.summary import dummy_inputs
    device = next(iter(module.parameters()), torch.empty(0)).device
    sizes = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(
        sum(t.numel() * t.element_size() for t in (out if isinstance(out, (tuple, list)) else [out])
            if isinstance(t, torch.Tensor)))) for m in module.modules()]
    try:
        with torch.no_grad(), fx_config.patch(meta_nonzero_assume_all_nonzero=True):
            module(*dummy_inputs(interface, device, batch=2))
    finally:
        for hook in hooks:
            hook.remove()
    return sum(sizes) * batch // 2


@attrs.frozen
class MemoryEstimate:
    state: int          # bytes: weights, grads, Adam moments, EMA copies, buffers
    activations: int    # bytes kept for backward at the per-process batch (float32)
    emas: int
    batch_gpu: int

    @property
    def total(self) -> int:
        return self.state + self.activations


def estimate_memory(built, recipe, world_size: int = 1) -> MemoryEstimate:
    """Training memory per process from the module's shapes (works on a meta-device module)."""
    module = built.module
    params = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    buffers = sum(b.numel() * b.element_size() for b in module.buffers())
    emas = len(recipe.ema.sigma_rel) if recipe.ema.kind == "power" else int(recipe.ema.kind == "classic")
    batch_gpu = recipe.batch_per_gpu or recipe.batch // world_size
    weights = params * 4
    state = weights + trainable * 4 * 3 + weights * emas + buffers          # model, grads, Adam m and v, EMAs
    return MemoryEstimate(state, _activation_bytes(module, built.interface, batch_gpu), emas, batch_gpu)


def mib(size: int) -> str:
    return f"{size / 2 ** 20:,.1f} MiB"


def describe(built, recipe, world_size: int = 1) -> str:
    module, interface = built.module, built.interface
    params = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    memory = estimate_memory(built, recipe, world_size)
    bound = " (upper bound: every stage sized for the whole batch)" if interface.stages else ""
    lines = [
        f"model:        {built.model_name} from {built.spec_path} (spec sha256 {built.spec_hash[:12]})",
        f"samples:      {tuple(interface.sample_shape)} -> {interface.out_channels} output channels; "
        f"noise input '{interface.noise.name}' ({interface.noise.kind})",
        "conditions:   " + (", ".join(f"{c.name} ({c.kind} {list(c.dims)}, drop {c.dropout})"
                                      for c in interface.conditions) or "none"),
        f"parameters:   {params:,} ({trainable:,} trainable)",
        f"steps:        {recipe.duration.images(recipe.batch) // recipe.batch:,} of {recipe.batch} images "
        f"({memory.batch_gpu} per process, {recipe.batch // (memory.batch_gpu * world_size)} accumulation rounds)",
        f"memory/proc:  weights+grads+Adam+{memory.emas} EMA {mib(memory.state)}, activations "
        f"~{mib(memory.activations)}{bound} (float32, batch {memory.batch_gpu}), total ~{mib(memory.total)}",
    ]
    return "\n".join(lines)


def available_memory(device: str) -> int | None:
    """Bytes free for a new process on `device`: MemAvailable of /proc/meminfo on CPU, the free memory of the
    current CUDA device; None where it cannot be told."""
    if device.startswith("cuda"):
        return torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(built, recipe, device: str, smaller: list[str], world_size: int = 1) -> None:
    """Stop before allocating when the estimate exceeds the memory free on `device` (UserError, exit 2)."""
    memory = estimate_memory(built, recipe, world_size)
    free = available_memory(device)
    if free is None or memory.total <= free:
        return
    raise UserError(f"{built.model_name} needs ~{mib(memory.total)} to train (weights+grads+Adam+EMA "
                    f"{mib(memory.state)}, activations ~{mib(memory.activations)} at batch {memory.batch_gpu}); "
                    f"{mib(free)} is available on {device}",
                    help=("train a tiny model instead: " + " or ".join(smaller)) if smaller else
                    "pick a smaller model (--model) or batch_per_gpu in the recipe",
                    notes=["nothing was allocated; `diffc train SPEC --dry-run` prints the estimate"])
