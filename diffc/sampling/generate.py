"""From a loaded model to images: sampler choice, guidance, per-sample seeds, streaming in batches.

Works on any InferenceBundle-like object with `.module` (the compiled model), `.interface` and `.objective`
(family "ddpm" | "edm" | "flow", see diffc.parameterizations). Thin adapters turn the objective into the
`predict` / `denoise` / `velocity` closures the sampler functions take.
"""
from __future__ import annotations

import attrs
import torch

from diffc.errors import UserError, did_you_mean
from diffc.interface import CONTROL_FIELDS, NO_AUGMENTATION
from diffc.sampling import (DIFFUSERS_SAMPLERS, DEFAULT_SAMPLER, DEFAULT_STEPS, ODE_METHODS, SAMPLERS, ddpm, edm,
                            flow, sampler_families)
from diffc.sampling.guidance import GuidedModel, NetworkGuidance
from diffc.sampling.noise import SeededNoise


@attrs.frozen
class SamplerConfig:
    sampler: str | None = None            # None: the objective family's default (ddpm | heun | ode)
    steps: int | None = None              # None: DEFAULT_STEPS of the sampler
    eta: float = 0.0                      # DDIM stochasticity (0 = deterministic)
    ode_method: str = "heun"              # flow ODE solver: euler | heun | dopri5
    guidance: float = 1.0                 # classifier-free guidance scale on all conditions (1 = off)
    semantic_guidance: float | None = None  # disentangled guidance: semantic scale (conditioning.md)
    control_guidance: float | None = None   # disentangled guidance: control scale
    guidance_channels: int | None = None  # guide only the first k output channels (None: the C sample channels;
                                          # a learned variance comes from the conditional branch; 3 = DiT's CFG)
    variance: str = "large"               # DDPM fixed variance: large (beta_t, ADM/DiT) | small (posterior)
    clip_denoised: bool | None = None     # DDPM/DDIM: clip predicted x0 to [-1, 1]; None: pixel models yes, latent no
    sigma_min: float = 0.002              # EDM rho schedule
    sigma_max: float = 80.0
    rho: float = 7.0
    churn: float = 0.0                    # EDM S_churn (0 = deterministic)

    def resolve(self, family: str, max_steps: int | None = None) -> "SamplerConfig":
        """Fill the defaults for a model of `family` and check the sampler fits it (UserError otherwise).

        `max_steps` (a DDPM model's T) caps the default step count; an explicit larger --steps is an error."""
        sampler = self.sampler or DEFAULT_SAMPLER[family]
        if sampler not in SAMPLERS:
            raise UserError(f"unknown sampler '{sampler}'", help=did_you_mean(sampler, SAMPLERS),
                            notes=[f"samplers: {', '.join(SAMPLERS)}"])
        if family not in sampler_families(sampler):
            fitting = [s for s in SAMPLERS if family in sampler_families(s)]
            raise UserError(f"sampler '{sampler}' is for {' and '.join(sampler_families(sampler))} models; this "
                            f"model's objective is {family}",
                            help=f"use one of: {', '.join(fitting)}")
        if self.variance not in ddpm.FIXED_VARIANCES:
            raise UserError(f"unknown fixed variance '{self.variance}'",
                            help=did_you_mean(self.variance, ddpm.FIXED_VARIANCES))
        if self.ode_method not in ODE_METHODS:
            raise UserError(f"unknown ODE method '{self.ode_method}'", help=did_you_mean(self.ode_method, ODE_METHODS))
        if family == "edm" and not 0 < self.sigma_min < self.sigma_max:
            raise UserError(f"need 0 < --sigma-min < --sigma-max, got {self.sigma_min} and {self.sigma_max}")
        steps = self.steps or min(DEFAULT_STEPS[sampler], max_steps or DEFAULT_STEPS[sampler])
        if steps < 1 or (max_steps is not None and steps > max_steps):
            raise UserError(f"--steps must be in 1..{max_steps or 'inf'}, got {steps}")
        return attrs.evolve(self, sampler=sampler, steps=steps)

    def provenance(self) -> dict:
        return attrs.asdict(self)


def build_condition(interface, noise: SeededNoise, labels=None, device="cpu") -> dict:
    """Labels per sample (given, or drawn from each sample's own seed); control metadata at "no
    augmentation" (conditioning.md: the inference default); text stays null."""
    if labels is not None and not any(c.kind == "label" for c in interface.conditions):
        raise UserError("a class label was given, but this model has no label condition")
    cond = {}
    for c in interface.conditions:
        if c.kind == "label":
            if labels is None:
                cond[c.name] = noise.randint(c.classes).to(device)
            else:
                cond[c.name] = torch.as_tensor(labels, dtype=torch.long, device=device).expand(len(noise)).clone()
                if int(cond[c.name].max()) >= c.classes or int(cond[c.name].min()) < 0:
                    raise UserError(f"class label out of range 0..{c.classes - 1} for condition '{c.name}'")
        elif c.kind == "control" and c.dims == (len(CONTROL_FIELDS),):
            cond[c.name] = torch.tensor(NO_AUGMENTATION, device=device).expand(len(noise), -1).clone()
    return cond


def sample_images(bundle, seeds, config: SamplerConfig, labels=None, device="cpu") -> torch.Tensor:
    """Samples in model space ([-1, 1] for pixels), one per seed; sample i depends only on seeds[i]."""
    objective = bundle.objective
    config = resolve_for(config, objective)
    noise = SeededNoise(seeds, device)
    interface = bundle.interface
    x = noise.randn(interface.sample_shape)
    cond = build_condition(interface, noise, labels, device)
    guide = getattr(bundle, "guide", None)
    guided = GuidedModel(bundle.module, 1.0 if guide else config.guidance, config.semantic_guidance,
                         config.control_guidance, config.guidance_channels or interface.sample_shape[0])
    by_network = NetworkGuidance(bundle, guide, config.guidance, cond) if guide else None
    with torch.no_grad():
        if config.sampler in DIFFUSERS_SAMPLERS:
            if by_network:
                raise UserError(f"--guide is not available with the diffusers sampler '{config.sampler}'",
                                help="use the ddpm, ddim, heun, euler, ode or sde sampler")
            return _sample_diffusers(guided, objective, interface, x, cond, noise, config,
                                     clip_denoised(bundle, config))
        if objective.family == "ddpm":
            return _sample_ddpm(guided, objective, interface, x, cond, noise, config, by_network,
                                clip_denoised(bundle, config))
        if objective.family == "edm":
            sigmas = edm.edm_sigmas(config.steps, config.sigma_min, config.sigma_max, config.rho)
            denoise = lambda x_, s: objective.denoise(guided, x_, s, cond)  # noqa: E731
            return edm.edm_sample(by_network.wrap(denoise, "denoise") if by_network else denoise, x, sigmas, noise,
                                  heun=config.sampler == "heun", churn=config.churn)
        velocity = lambda x_, t: objective.velocity(guided, x_, t, cond)  # noqa: E731
        velocity = by_network.wrap(velocity, "velocity") if by_network else velocity
        shift = flow_time_shift(objective)
        if config.sampler == "sde":
            return flow.flow_sde(velocity, x, noise, config.steps, shift=shift)
        return flow.flow_ode(velocity, x, config.steps, config.ode_method, shift=shift)


def sample_pixels(bundle, seeds, config: SamplerConfig, labels=None, device="cpu") -> torch.Tensor:
    """Samples as pixels in [-1, 1]: a latent model's (`bundle.decoder` set) decoded by its autoencoder."""
    samples = sample_images(bundle, seeds, config, labels, device)
    decoder = getattr(bundle, "decoder", None)
    return samples if decoder is None else decoder.decode(samples)


def resolve_for(config: SamplerConfig, objective) -> SamplerConfig:
    """`config` with defaults filled for this objective (DDPM: at most its T steps)."""
    return config.resolve(objective.family, objective.steps if objective.family == "ddpm" else None)


def flow_time_shift(objective) -> float:
    """The resolution shift a flow model was trained with (recipe objective.shift; 1 = none)."""
    return float(getattr(getattr(objective, "cfg", None), "shift", 1.0))


def clip_denoised(bundle, config: SamplerConfig) -> bool:
    """ADM's clip_denoised: on for pixel models, off for latent ones (DiT samples with it off), unless set."""
    if config.clip_denoised is not None:
        return config.clip_denoised
    recipe = getattr(bundle, "recipe", None) or {}
    latent = (getattr(bundle, "decoder", None) is not None or (recipe.get("data") or {}).get("name") == "latents"
              or bool((recipe.get("autoencoder") or {}).get("path")))
    return not latent


def _sample_ddpm(guided, objective, interface, x, cond, noise, config, by_network, clip):
    channels = interface.sample_shape[0]

    def predict(x_t, t):
        out, _ = guided(x_t, t, cond)
        variance = out[:, channels:] if objective.learned_variance else None
        return objective.eps_from_output(out[:, :channels], x_t, t), variance

    if by_network:
        predict = by_network.wrap(predict, "eps")
    timesteps = ddpm.respaced_timesteps(objective.steps, config.steps)
    if config.sampler == "ddim":
        return ddpm.ddim(predict, x, objective.alphas_cumprod, timesteps, noise, config.eta, clip)
    return ddpm.ddpm_ancestral(predict, x, objective.alphas_cumprod, timesteps, noise, objective.learned_variance,
                               config.variance, clip)


def _sample_diffusers(guided, objective, interface, x, cond, noise, config, clip):
    """dpmpp-2m / unipc / euler-a through diffusers (diffc.sampling.schedulers), per-sample generators."""
    from diffc.sampling import schedulers
    if objective.family == "ddpm":
        channels = interface.sample_shape[0]
        predict = lambda x_, t: guided(x_, t, cond)[0][:, :channels]  # noqa: E731
        return schedulers.sample_ddpm(config.sampler, predict, x, config.steps, objective.alphas_cumprod,
                                      getattr(objective, "parameterization", "eps"), noise.generators, clip)
    velocity = lambda x_, t: objective.velocity(guided, x_, t, cond)  # noqa: E731
    return schedulers.sample_flow(config.sampler, velocity, x, config.steps, flow_time_shift(objective),
                                  noise.generators)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 [N, C, H, W] (round to nearest, clip)."""
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def generate(bundle, n: int, seed: int = 0, batch_size: int = 64, config: SamplerConfig = SamplerConfig(),
             labels=None, progress: bool = True, device="cpu"):
    """Yield (first_index, uint8 batch) over n samples; sample i uses seed `seed + i`, whatever the batch size."""
    from tqdm import tqdm
    with tqdm(total=n, unit="img", desc="sampling", disable=not progress, leave=False) as bar:
        for start in range(0, n, batch_size):
            seeds = range(seed + start, seed + min(start + batch_size, n))
            images = to_uint8(sample_pixels(bundle, seeds, config, labels, device))
            bar.update(len(seeds))
            yield start, images


def load_bundle(checkpoint, ema=None, device="cpu", vae=None):
    """InferenceBundle from a checkpoint file or run directory (diffc.checkpoints.load_for_inference)."""
    from pathlib import Path
    if not Path(checkpoint).exists():
        raise UserError(f"checkpoint not found: {checkpoint}", help="pass a checkpoint file or a run directory")
    try:
        from diffc.checkpoints import load_for_inference
    except ImportError as exc:
        raise UserError(f"this diffc build cannot load checkpoints ({exc})") from None
    return load_for_inference(checkpoint, ema=ema, device=device, vae=vae)
