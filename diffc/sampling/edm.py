"""EDM deterministic/stochastic sampler (Euler or Heun) on the rho noise-level schedule.

Samplers take `denoise(x, sigma) -> D(x; sigma)` with `sigma` a [N] tensor: each evaluation passes its own
noise level, so a multi-stage model picks the decoder for exactly the level it is evaluated at.
"""
from __future__ import annotations

import math

import torch


# EDM (Karras et al. 2022), Eq. 5: sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho, sigma_N = 0.
def edm_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    if steps < 1:
        raise ValueError(f"sampling steps must be >= 1, got {steps}")
    i = torch.arange(steps, dtype=torch.float64)
    frac = i / max(steps - 1, 1)
    sigmas = (sigma_max ** (1 / rho) + frac * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)])


# EDM (Karras et al. 2022), Alg. 2 (Heun, optional churn); heun=False keeps only the Euler step.
def edm_sample(denoise, x, sigmas, noise=None, heun: bool = True, churn: float = 0.0, churn_min: float = 0.0,
               churn_max: float = float("inf"), churn_noise: float = 1.0):
    steps = len(sigmas) - 1
    x = x * sigmas[0].item()
    for i in range(steps):
        sigma, sigma_next = sigmas[i].item(), sigmas[i + 1].item()
        gamma = min(churn / steps, math.sqrt(2) - 1) if churn > 0 and churn_min <= sigma <= churn_max else 0.0
        sigma_hat = sigma * (1 + gamma)
        if gamma > 0:
            x = x + math.sqrt(sigma_hat ** 2 - sigma ** 2) * churn_noise * noise.randn_like(x)
        d = (x - denoise(x, _level(x, sigma_hat))) / sigma_hat
        x_next = x + (sigma_next - sigma_hat) * d
        if heun and sigma_next > 0:
            d_next = (x_next - denoise(x_next, _level(x, sigma_next))) / sigma_next
            x_next = x + (sigma_next - sigma_hat) * (d + d_next) / 2
        x = x_next
    return x


def _level(x, value: float):
    return torch.full((x.shape[0],), value, dtype=x.dtype, device=x.device)
