"""Noise schedules and their conversions, shared by objectives, samplers and the `@stage` router.

Conventions (see diffc.interface): DDPM timestep index t in 0..T-1 (0 clean); flow time in [0,1] with
0 = noise, 1 = data (SiT); EDM sigma > 0. log-SNR = log(alpha^2 / sigma^2) of the VP/variance form.
Every function works on torch tensors (float64 inside where precision matters) and on Python floats
through `math` where noted; torch is imported lazily so plain-Python callers pay nothing.
"""
from __future__ import annotations

import math


def ddpm_betas(schedule: str, steps: int):
    """Betas of DDPM (Ho et al. 2020, linear 1e-4..0.02 scaled by 1000/T) or cosine (Nichol & Dhariwal 2021, Eq. 17)."""
    import torch
    if schedule == "linear":
        scale = 1000.0 / steps
        return torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64)
    if schedule == "cosine":
        s = 0.008
        t = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - f[1:] / f[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown DDPM schedule {schedule!r} (linear | cosine)")


def alphas_cumprod(schedule: str, steps: int):
    """abar_t = prod_{s<=t} (1 - beta_s), float64 [T]."""
    import torch
    return torch.cumprod(1.0 - ddpm_betas(schedule, steps), dim=0)


def logsnr_from_timestep(t, schedule: str, steps: int):
    """log(abar_t / (1 - abar_t)) for integer-valued DDPM indices (tensor)."""
    import torch
    abar = alphas_cumprod(schedule, steps).to(t.device)
    a = abar[t.long().clamp(0, steps - 1)]
    return torch.log(a) - torch.log1p(-a)


def logsnr_from_time(t):
    """Linear (rectified-flow) path x_t = t x1 + (1-t) x0: log-SNR = 2 log(t / (1 - t))."""
    import torch
    t = t.double().clamp(1e-7, 1 - 1e-7)
    return 2 * (torch.log(t) - torch.log1p(-t))


def logsnr_from_sigma(sigma):
    """EDM: x = y + sigma n, so SNR = 1 / sigma^2 (data variance factored out)."""
    import torch
    return -2 * torch.log(sigma.double())


def logsnr(noise_level, noise_input):
    """log-SNR per sample for a noise level in the parameterisation of `noise_input` (diffc.interface.NoiseInput)."""
    if noise_input.kind == "timestep":
        return logsnr_from_timestep(noise_level, noise_input.schedule, noise_input.steps)
    if noise_input.kind == "time":
        return logsnr_from_time(noise_level)
    if noise_input.kind == "sigma":
        return logsnr_from_sigma(noise_level)
    raise ValueError(noise_input.kind)


def edm_precond(sigma, sigma_data: float = 0.5):
    """EDM preconditioning (Karras et al. 2022, Table 1; EDM2 Eq. 7): c_skip, c_out, c_in, c_noise."""
    import torch
    s2, d2 = sigma * sigma, sigma_data * sigma_data
    c_skip = d2 / (s2 + d2)
    c_out = sigma * sigma_data / (s2 + d2).sqrt()
    c_in = 1 / (d2 + s2).sqrt()
    c_noise = torch.log(sigma) / 4
    return c_skip, c_out, c_in, c_noise


def rf_shift_time(t, ratio: float):
    """Resolution shift for the flow time (Berrada et al. Sec. 4.2): log-SNR drops by 2 ln r.

    With our time convention (t=1 data), noise-side time u = 1 - t is shifted as u' = r u / (1 + (r-1) u).
    """
    u = 1 - t
    u = ratio * u / (1 + (ratio - 1) * u)
    return 1 - u
