"""Samplers (DDPM/DDIM, EDM Euler/Heun, flow ODE/SDE; diffusers' DPM-Solver++, UniPC, Euler ancestral), guidance
and seeded generation.

This file is plain Python (no torch import) so that the CLI can list sampler choices without loading torch.
"""

SAMPLER_FAMILY = {"ddpm": "ddpm", "ddim": "ddpm", "euler": "edm", "heun": "edm", "ode": "flow", "sde": "flow"}
DIFFUSERS_SAMPLERS = {"dpmpp-2m": ("ddpm", "flow"), "unipc": ("ddpm", "flow"), "euler-a": ("ddpm", "flow")}
SAMPLERS = (*SAMPLER_FAMILY, *DIFFUSERS_SAMPLERS)
DEFAULT_SAMPLER = {"ddpm": "ddpm", "edm": "heun", "flow": "ode"}
DEFAULT_STEPS = {"ddpm": 250, "ddim": 50, "euler": 32, "heun": 32, "ode": 50, "sde": 100,
                 "dpmpp-2m": 20, "unipc": 20, "euler-a": 50}
ODE_METHODS = ("euler", "heun", "dopri5")


def sampler_families(sampler: str) -> tuple[str, ...]:
    """The objective families (ddpm | edm | flow) a sampler works for."""
    return DIFFUSERS_SAMPLERS.get(sampler) or (SAMPLER_FAMILY[sampler],)
