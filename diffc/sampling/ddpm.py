"""DDPM ancestral sampling and DDIM (with inversion) over a respaced subset of the training timesteps.

Samplers take `predict(x, t) -> (eps, variance_output | None)` where `t` is a long tensor of ORIGINAL
timestep indices (0..T-1): respacing changes which indices are visited, never what the model is shown.
`alphas_cumprod` is the float64 [T] schedule of the objective (diffc.schedules.alphas_cumprod).
Defaults follow ADM/DiT (openai/guided-diffusion, facebookresearch/DiT `diffusion/`): DiT's respacing, fixed
variance "large" (beta_t), and `clip` of the predicted x0 to the data range [-1, 1] where the caller asks for it
(ADM's clip_denoised: pixel models; latent models do not clip).
"""
from __future__ import annotations

import math

import torch


# DiT/ADM `space_timesteps` (one section): a float stride (T-1)/(n-1) accumulated in Python floats, each
# position rounded with Python's round() (half to even), so .5 ties fall as they do there.
def respaced_timesteps(steps_total: int, steps: int) -> torch.Tensor:
    """`steps` evenly strided original indices from 0 to T-1 (ascending), equal to DiT's `space_timesteps(T,
    [steps])` for steps >= 2. steps = 1 visits T-1 alone (DiT would take index 0, a step that never denoises)."""
    if not 1 <= steps <= steps_total:
        raise ValueError(f"sampling steps must be in 1..{steps_total}, got {steps}")
    if steps == 1:
        return torch.tensor([steps_total - 1])
    stride, position, taken = (steps_total - 1) / (steps - 1), 0.0, []
    for _ in range(steps):
        taken.append(round(position))
        position += stride
    return torch.tensor(taken)


def respaced_alphas(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor):
    """abar at the visited indices and at each one's predecessor in the respaced chain (1 before the first)."""
    abar = alphas_cumprod.double()[timesteps]
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    return abar, abar_prev


def _predict_x0(x, eps, abar: float, clip: bool = False):
    x0 = (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    return x0.clamp(-1, 1) if clip else x0


def _eps_from_x0(x, x0, abar: float):
    return (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)


FIXED_VARIANCES = ("large", "small")


# Ho et al. 2020, Sec. 3.2: sigma_t^2 = beta_t ("large") or the posterior variance beta~_t ("small"); ADM's
# FIXED_LARGE puts beta~ at index 0 (the final step adds no noise, so it is never drawn from).
def fixed_variances(alphas_cumprod, timesteps, kind: str = "large") -> torch.Tensor:
    """Per-step variances of the respaced chain (float64, ascending like `timesteps`)."""
    abar, abar_prev = respaced_alphas(alphas_cumprod, timesteps)
    betas = 1 - abar / abar_prev
    posterior = betas * (1 - abar_prev) / (1 - abar)
    if kind == "small":
        return posterior
    if kind == "large":
        return torch.cat([posterior[1:2], betas[1:]]) if len(betas) > 1 else posterior
    raise ValueError(f"unknown fixed variance {kind!r} ({' | '.join(FIXED_VARIANCES)})")


# Ho et al. 2020, Alg. 2 / Eq. 6-7 (posterior q(x_{t-1}|x_t,x_0)); learned range: Nichol & Dhariwal 2021, Eq. 15.
def ddpm_ancestral(predict, x, alphas_cumprod, timesteps, noise, learned_variance: bool = False,
                   variance: str = "large", clip: bool = False):
    abar_all, abar_prev_all = respaced_alphas(alphas_cumprod, timesteps)
    betas = 1 - abar_all / abar_prev_all
    posterior_var = betas * (1 - abar_prev_all) / (1 - abar_all)
    posterior_logvar = torch.log(posterior_var.clamp(min=1e-20))   # entry 0 (variance 0) unused: no noise at the end
    fixed_logvar = torch.log(fixed_variances(alphas_cumprod, timesteps, variance).clamp(min=1e-20))
    for k in reversed(range(len(timesteps))):
        abar, abar_prev, beta = abar_all[k].item(), abar_prev_all[k].item(), betas[k].item()
        t = torch.full((x.shape[0],), int(timesteps[k]), dtype=torch.long, device=x.device)
        eps, variance_output = predict(x, t)
        x0 = _predict_x0(x, eps, abar, clip)
        mean = (beta * math.sqrt(abar_prev) / (1 - abar)) * x0 \
            + ((1 - abar_prev) * math.sqrt(1 - beta) / (1 - abar)) * x
        if k == 0:
            x = mean
            continue
        if learned_variance:
            frac = (variance_output + 1) / 2
            logvar = frac * math.log(beta) + (1 - frac) * posterior_logvar[k].item()
        else:
            logvar = torch.full_like(x, fixed_logvar[k].item())
        x = mean + torch.exp(0.5 * logvar) * noise.randn_like(x)
    return x


# Song et al. 2021 (DDIM), Eq. 12 with sigma_t(eta) from Eq. 16.
# With `clip`, eps is re-derived from the clipped x0 (as ADM's ddim_sample does).
def ddim(predict, x, alphas_cumprod, timesteps, noise=None, eta: float = 0.0, clip: bool = False):
    abar_all, abar_prev_all = respaced_alphas(alphas_cumprod, timesteps)
    for k in reversed(range(len(timesteps))):
        abar, abar_prev = abar_all[k].item(), abar_prev_all[k].item()
        t = torch.full((x.shape[0],), int(timesteps[k]), dtype=torch.long, device=x.device)
        eps, _ = predict(x, t)
        x0 = _predict_x0(x, eps, abar, clip)
        if clip:
            eps = _eps_from_x0(x, x0, abar)
        sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))
        x = math.sqrt(abar_prev) * x0 + math.sqrt(max(1 - abar_prev - sigma ** 2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * noise.randn_like(x)
    return x


# Song et al. 2021 (DDIM), Eq. 13: the eta = 0 ODE integrated from data towards noise.
def ddim_invert(predict, x, alphas_cumprod, timesteps):
    abar_all, abar_prev_all = respaced_alphas(alphas_cumprod, timesteps)
    for k in range(len(timesteps)):
        abar, abar_prev = abar_all[k].item(), abar_prev_all[k].item()
        t_eval = int(timesteps[max(k - 1, 0)])   # the index of the level we stand on (t_0 when still clean)
        eps, _ = predict(x, torch.full((x.shape[0],), t_eval, dtype=torch.long, device=x.device))
        x0 = _predict_x0(x, eps, abar_prev)
        x = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * eps
    return x
