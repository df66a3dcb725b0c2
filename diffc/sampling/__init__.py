"""Samplers (DDPM/DDIM, EDM Euler/Heun, flow ODE/SDE), guidance and seeded generation.

This file is plain Python (no torch import) so that the CLI can list sampler choices without loading torch.
"""

SAMPLER_FAMILY = {"ddpm": "ddpm", "ddim": "ddpm", "euler": "edm", "heun": "edm", "ode": "flow", "sde": "flow"}
DEFAULT_SAMPLER = {"ddpm": "ddpm", "edm": "heun", "flow": "ode"}
DEFAULT_STEPS = {"ddpm": 250, "ddim": 50, "euler": 32, "heun": 32, "ode": 50, "sde": 100}
ODE_METHODS = ("euler", "heun", "dopri5")
