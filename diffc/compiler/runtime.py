"""Per-forward facts computed once from the noise level (`ctx`), which blocks and method code read.

Torch-only on purpose: `diffc export` copies these functions into a standalone model file (and so it does
each method's run-time functions, diffc.methods.*: route_rows, stage_members, ...).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

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


def make_context(noise_level: torch.Tensor, noise, need_logsnr: bool) -> RunContext:
    frac = noise_fraction(noise_level, noise)
    return RunContext(noise_level, frac, logsnr(noise_level, noise) if need_logsnr else None)


def allow_dynamic_stage_rows() -> dict:
    """torch._dynamo settings under which `@stage` routing compiles as one graph: a stage's rows come from
    `nonzero`, whose size depends on the data, and dynamo keeps such ops in the graph only when asked."""
    return {"capture_dynamic_output_shape_ops": True}
