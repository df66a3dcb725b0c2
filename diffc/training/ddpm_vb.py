"""The IDDPM variational-bound term that trains DiT's learned variance (Nichol & Dhariwal 2021, Sec. 3.1)."""
from __future__ import annotations

import math

import torch


class PosteriorTables:
    """Per-timestep constants of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, Eq. 6-7), float64 [T]."""

    def __init__(self, betas: torch.Tensor):
        abar = torch.cumprod(1 - betas, 0)
        abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
        self.betas = betas
        self.variance = betas * (1 - abar_prev) / (1 - abar)
        self.log_variance_clipped = torch.log(torch.cat([self.variance[1:2], self.variance[1:]]))
        self.mean_coef_x0 = betas * abar_prev.sqrt() / (1 - abar)
        self.mean_coef_xt = (1 - abar_prev) * (1 - betas).sqrt() / (1 - abar)

    def take(self, table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return table.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) elementwise, in nats."""
    return 0.5 * (-1 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x, mean, log_scale):
    """log P(x) of 8-bit data in [-1, 1] under N(mean, e^{2 log_scale}) integrated over its bin (Ho et al. Eq. 13)."""
    def cdf(z):
        return 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    inv_std = torch.exp(-log_scale)
    upper, lower = cdf(inv_std * (x - mean + 1 / 255)), cdf(inv_std * (x - mean - 1 / 255))
    log_upper = torch.log(upper.clamp(min=1e-12))
    log_one_minus_lower = torch.log((1 - lower).clamp(min=1e-12))
    log_mid = torch.log((upper - lower).clamp(min=1e-12))
    return torch.where(x < -0.999, log_upper, torch.where(x > 0.999, log_one_minus_lower, log_mid))


def vb_term(tables: PosteriorTables, x0, x_t, t, eps_detached, var_output, alphas_cumprod):
    """L_vb in bits/dim per sample: KL for t > 0, decoder NLL at t = 0; mean is frozen (IDDPM Eq. 16)."""
    abar = tables.take(alphas_cumprod, t, x0)
    x0_hat = (x_t - (1 - abar).sqrt() * eps_detached) / abar.sqrt()
    model_mean = tables.take(tables.mean_coef_x0, t, x0) * x0_hat + tables.take(tables.mean_coef_xt, t, x0) * x_t
    frac = (var_output + 1) / 2
    min_log = tables.take(tables.log_variance_clipped, t, x0)
    max_log = tables.take(torch.log(tables.betas), t, x0)
    model_logvar = frac * max_log + (1 - frac) * min_log
    true_mean = tables.take(tables.mean_coef_x0, t, x0) * x0 + tables.take(tables.mean_coef_xt, t, x0) * x_t
    kl = normal_kl(true_mean, min_log, model_mean, model_logvar).flatten(1).mean(1) / math.log(2)
    nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_logvar).flatten(1).mean(1) / math.log(2)
    return torch.where(t == 0, nll, kl)
