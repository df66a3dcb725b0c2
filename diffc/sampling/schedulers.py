"""diffusers' schedulers as diffc samplers: DPM-Solver++ (2M), UniPC and Euler ancestral for DDPM and flow models.

The mapping onto diffc's parameterisations (diffc.interface, diffc.schedules):
- DDPM models (eps or v): `trained_betas` = the betas of the objective's own abar table (any schedule,
  any T), `prediction_type` = "epsilon" | "v_prediction"; the model sees the scheduler's integer timesteps,
  which are original training indices, as with diffc's own DDPM/DDIM. Where diffc's DDPM/DDIM clip the
  predicted x0 (pixel models, `--clip-denoised`), so do these: x0 clipped, eps re-derived from it.
- flow models (SiT path x_t = t x_data + (1 - t) x_noise, t = 0 noise .. 1 data), DPM-Solver++ and UniPC:
  diffusers' own flow mode (`use_flow_sigmas`, sigma = 1 - t, "flow_prediction" = noise - data, so the
  scheduler gets -v and the model t = 1 - sigma) with `flow_shift` = the recipe's resolution shift
  (the same u' = r u / (1 + (r-1) u) as diffc.schedules.rf_shift_time).
- flow models, Euler ancestral: diffusers has it for VP/VE schedules only (its stochastic flow-matching Euler
  re-noises the predicted data with fresh noise, which does not sample the model's distribution: std 0.35
  instead of 0.5 on the Gaussian toy of tests/test_sampling.py). So the flow model is mapped onto the VP
  form: x_vp = x_t / c with c = sqrt(t^2 + (1-t)^2), abar(t) = t^2 / c^2, eps = x_t - t v, on a table of
  T levels t_i = shifted(1 - (i+1)/(T+1)); EulerAncestralDiscreteScheduler then runs with those betas.
Every scheduler uses `timestep_spacing="trailing"` (Lin et al. 2024, Table 2): the first step is at the last
training index / pure noise, as in diffc's own respacing. Randomness comes from the per-sample generators of
diffc.sampling.noise.SeededNoise (diffusers accepts one generator per sample), so images do not depend on the
batch size. diffusers is imported only when one of these samplers runs.
"""
from __future__ import annotations

import inspect

import torch

from diffc.errors import UserError

# sampler name -> diffusers class and config for DDPM models (and flow models, except euler-a: see above)
SCHEDULERS = {
    "dpmpp-2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
}
FLOW_TRAIN_STEPS = 1000    # the flow schedulers' grid resolution: the first level is t = 1 / 1000


def _diffusers():
    try:
        import diffusers
    except ImportError:
        raise UserError("the samplers dpmpp-2m, unipc and euler-a need the diffusers package",
                        help="pip install diffusers (or use ddim / ode, which need nothing extra)") from None
    return diffusers


def ddpm_scheduler_config(alphas_cumprod: torch.Tensor, parameterization: str) -> dict:
    """The diffusers config that reproduces a DDPM objective: its betas, T, prediction type, no clipping."""
    abar = alphas_cumprod.double().cpu()
    betas = 1 - abar / torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    return {"num_train_timesteps": len(abar), "trained_betas": betas.numpy(),
            "prediction_type": {"eps": "epsilon", "v": "v_prediction"}[parameterization],
            "timestep_spacing": "trailing"}


def flow_vp_times(train_steps: int, shift: float = 1.0) -> torch.Tensor:
    """Flow times t_i (descending in i, like abar) of the VP table a flow model is mapped onto for euler-a."""
    u = torch.arange(1, train_steps + 1, dtype=torch.float64) / (train_steps + 1)   # noise fraction, never 0 or 1
    return 1 - shift * u / (1 + (shift - 1) * u)


def make_scheduler(sampler: str, family: str, alphas_cumprod=None, parameterization: str = "eps",
                   shift: float = 1.0):
    """The diffusers scheduler for `sampler` on a model of `family` ("ddpm" needs the abar table)."""
    name, extra = SCHEDULERS[sampler]
    if family == "flow" and sampler == "euler-a":
        t = flow_vp_times(FLOW_TRAIN_STEPS, shift)
        alphas_cumprod = t ** 2 / (t ** 2 + (1 - t) ** 2)
    if family == "ddpm" or sampler == "euler-a":
        return getattr(_diffusers(), name)(**ddpm_scheduler_config(alphas_cumprod, parameterization), **extra)
    return getattr(_diffusers(), name)(num_train_timesteps=FLOW_TRAIN_STEPS, prediction_type="flow_prediction",
                                       use_flow_sigmas=True, flow_shift=shift, timestep_spacing="trailing",
                                       **extra)


def run_scheduler(scheduler, model_output, x, steps: int, generators=None, **step_options):
    """The diffusers sampling loop: `model_output(x_in, i)` (i: the step's index into the scheduler's timesteps
    and sigmas) returns what the scheduler's prediction type names; `generators` (one per sample) feed the
    stochastic schedulers; `step_options` go to every step()."""
    scheduler.set_timesteps(steps, device=x.device)
    stochastic = {"generator": generators} if "generator" in inspect.signature(scheduler.step).parameters else {}
    x = x * scheduler.init_noise_sigma
    for i, timestep in enumerate(scheduler.timesteps):
        output = model_output(scheduler.scale_model_input(x, timestep), i)
        x = scheduler.step(output, timestep, x, **stochastic, **step_options).prev_sample.to(x.dtype)
    return x


def _index(timestep) -> int:
    """A scheduler timestep as a training index (trailing spacing gives whole numbers)."""
    value = float(timestep)
    if value != round(value):
        raise ValueError(f"scheduler asked for a fractional timestep {value}")
    return round(value)


def sample_ddpm(sampler: str, predict, x, steps: int, alphas_cumprod, parameterization: str = "eps",
                generators=None, clip: bool = False):
    """`predict(x, t) -> the first C output channels` with t the long original index of every sample. With
    `clip` (ADM's clip_denoised, as diffc's own DDPM/DDIM), the predicted x0 is clipped to [-1, 1] and the
    scheduler gets the eps re-derived from it."""
    scheduler = make_scheduler(sampler, "ddpm", alphas_cumprod, "eps" if clip else parameterization)
    table = alphas_cumprod.double()

    def model_output(x_in, i):
        index = _index(scheduler.timesteps[i])
        out = predict(x_in, torch.full((x_in.shape[0],), index, dtype=torch.long, device=x_in.device))
        if not clip:
            return out
        abar = table[index].item()
        eps = out if parameterization == "eps" else abar ** 0.5 * out + (1 - abar) ** 0.5 * x_in
        x0 = ((x_in - (1 - abar) ** 0.5 * eps) / abar ** 0.5).clamp(-1, 1)
        return (x_in - abar ** 0.5 * x0) / (1 - abar) ** 0.5
    return run_scheduler(scheduler, model_output, x, steps, generators)


def sample_flow(sampler: str, velocity, x, steps: int, shift: float = 1.0, generators=None):
    """`velocity(x, t) -> v = data - noise` at diffc time t (0 noise .. 1 data), mapped as the module says."""
    scheduler = make_scheduler(sampler, "flow", shift=shift)
    if sampler == "euler-a":
        times = flow_vp_times(FLOW_TRAIN_STEPS, shift)

        def model_output(x_vp, i):
            t = times[_index(scheduler.timesteps[i])].item()
            x_t = x_vp * (t ** 2 + (1 - t) ** 2) ** 0.5
            return x_t - t * velocity(x_t, _level(x_t, t))          # eps of the VP form
    else:
        def model_output(x_t, i):   # the scheduler's own sigma: its integer timesteps round sigma * T down
            return -velocity(x_t, _level(x_t, 1 - scheduler.sigmas[i].item()))
    return run_scheduler(scheduler, model_output, x, steps, generators)


def _level(x, value: float):
    return torch.full((x.shape[0],), value, dtype=x.dtype, device=x.device)
