"""Per-forward facts computed once from the noise level: DTR mask rows and multi-stage assignment.

Torch-only on purpose: `diffc export` copies these functions into a standalone model file.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from diffc.compiler.lower_route import mask_starts
from diffc.schedules import logsnr


class RunContext(NamedTuple):
    noise_level: torch.Tensor        # [N] as given to forward
    noise_fraction: torch.Tensor     # [N] in [0, 1]: 0 clean, 1 pure noise
    logsnr: torch.Tensor | None      # [N] float64, only when stages need it


def noise_fraction(noise_level: torch.Tensor, noise) -> torch.Tensor:
    """0 = clean ... 1 = pure noise; DTR's t/(T-1) for timesteps, 1 - t for flow time (SiT), log-sigma for EDM."""
    t = noise_level.double()
    if noise.kind == "timestep":
        return t / (noise.steps - 1)
    if noise.kind == "time":
        return 1.0 - t
    lo, hi = torch.log(torch.tensor(0.002, dtype=torch.float64)), torch.log(torch.tensor(80.0, dtype=torch.float64))
    return ((torch.log(t.clamp_min(1e-12)) - lo) / (hi - lo)).clamp(0, 1)


def route_table(channels: int, window: float, weight: float, tasks: int) -> torch.Tensor:
    """[T, C] binary DTR masks: a window of floor(C beta) ones starting at start[t] (dtr.md, released code)."""
    active = int(channels * window)
    table = torch.zeros(tasks, channels)
    for t, start in enumerate(mask_starts(channels, window, weight, tasks)):
        table[t, start:start + active] = 1.0
    return table


def route_rows(fraction: torch.Tensor, tasks: int) -> torch.Tensor:
    """Row of the mask table for each sample: round(fraction * (T-1))."""
    return torch.round(fraction * (tasks - 1)).long().clamp(0, tasks - 1)


def stage_index(logsnr: torch.Tensor, boundaries: list[float]) -> torch.Tensor:
    """Stage s holds b_{s-1} > logsnr >= b_s (stage 0 lowest noise): count boundaries above logsnr."""
    b = torch.tensor(boundaries, dtype=torch.float64, device=logsnr.device)
    return (logsnr[:, None] < b[None]).sum(dim=1)


def make_context(noise_level: torch.Tensor, noise, need_logsnr: bool) -> RunContext:
    frac = noise_fraction(noise_level, noise)
    return RunContext(noise_level, frac, logsnr(noise_level, noise) if need_logsnr else None)


def stage_members(logsnr: torch.Tensor, boundaries: tuple, force_stage: int | None = None) -> tuple:
    """Batch rows of each stage; `force_stage` sends every row to one stage (meta-device FLOP counts)."""
    if force_stage is not None:
        n = logsnr.shape[0]
        return tuple(torch.arange(n if s == force_stage else 0, device=logsnr.device)
                     for s in range(len(boundaries) + 1))
    index = stage_index(logsnr, list(boundaries))
    return tuple(torch.nonzero(index == s).squeeze(1) for s in range(len(boundaries) + 1))


def slice_context(ctx: RunContext, rows: torch.Tensor) -> RunContext:
    return RunContext(ctx.noise_level[rows], ctx.noise_fraction[rows], None if ctx.logsnr is None else ctx.logsnr[rows])


def allow_dynamic_stage_rows() -> dict:
    """torch._dynamo settings under which `@stage` routing compiles as one graph: a stage's rows come from
    `nonzero`, whose size depends on the data, and dynamo keeps such ops in the graph only when asked."""
    return {"capture_dynamic_output_shape_ops": True}
