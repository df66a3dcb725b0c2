"""Flow-matching samplers on the linear path x_t = t x1 + (1 - t) x0 (SiT convention: t = 0 noise, t = 1 data).

Samplers take `velocity(x, t) -> v` with `t` a [N] tensor. The ODE runs forwards (noise -> data) or backwards
(data -> noise, for inversion) with fixed-step Euler/Heun or torchdiffeq's adaptive dopri5.
"""
from __future__ import annotations

import torch

from diffc.sampling import ODE_METHODS
from diffc.schedules import rf_shift_time


# Lipman et al. 2023 / SiT (Ma et al. 2024) Sec. 2: dx/dt = v(x, t), fixed-step Euler or Heun (trapezoid) on [t0, t1].
# `shift` != 1 spaces the grid by the resolution shift the model was trained with (diffc.schedules.rf_shift_time).
def flow_ode(velocity, x, steps: int = 50, method: str = "heun", t0: float = 0.0, t1: float = 1.0,
             atol: float = 1e-6, rtol: float = 1e-3, shift: float = 1.0):
    if method == "dopri5":
        return _flow_ode_adaptive(velocity, x, steps, t0, t1, atol, rtol)
    if method not in ODE_METHODS:
        raise ValueError(f"unknown ODE method {method!r} ({' | '.join(ODE_METHODS)})")
    times = time_grid(t0, t1, steps, shift)
    for i in range(steps):
        t, t_next = times[i].item(), times[i + 1].item()
        v = velocity(x, _level(x, t))
        x_next = x + (t_next - t) * v
        if method == "heun":
            x_next = x + (t_next - t) * (v + velocity(x_next, _level(x, t_next))) / 2
        x = x_next
    return x


# Dormand & Prince 1980 (torchdiffeq.odeint 'dopri5'), SiT's default ODE sampler: atol 1e-6, rtol 1e-3.
def _flow_ode_adaptive(velocity, x, steps, t0, t1, atol, rtol):
    from torchdiffeq import odeint

    def field(t, state):
        return velocity(state, _level(state, float(t)))

    times = torch.linspace(t0, t1, max(steps, 1) + 1, dtype=torch.float64)
    return odeint(field, x, times.to(x.dtype), method="dopri5", atol=atol, rtol=rtol)[-1]


# SiT (Ma et al. 2024) Sec. 2.3 / Eq. 8: dx = [v + w(t) s] dt + sqrt(2 w(t)) dW, w(t) = norm * sigma_t = norm (1 - t),
# score of the linear path s = (t v - x) / (1 - t); Euler-Maruyama on [0, 1 - last_step], then a noiseless last step.
def flow_sde(velocity, x, noise, steps: int = 100, diffusion_norm: float = 1.0, last_step: float = 0.04,
             shift: float = 1.0):
    times = time_grid(0.0, 1.0 - last_step, steps, shift)
    def drift(x, t):
        v = velocity(x, _level(x, t))
        return v + diffusion_norm * (1 - t) * (t * v - x) / (1 - t)

    for i in range(steps):
        t, dt = times[i].item(), (times[i + 1] - times[i]).item()
        x = x + drift(x, t) * dt + (2 * diffusion_norm * (1 - t) * dt) ** 0.5 * noise.randn_like(x)
    return x + drift(x, times[-1].item()) * last_step


def time_grid(t0: float, t1: float, steps: int, shift: float = 1.0) -> torch.Tensor:
    """steps + 1 times from t0 to t1, evenly spaced, then resolution-shifted when shift != 1."""
    times = torch.linspace(t0, t1, steps + 1, dtype=torch.float64)
    return times if shift == 1.0 else rf_shift_time(times, shift)


def _level(x, value: float):
    return torch.full((x.shape[0],), value, dtype=x.dtype, device=x.device)
