"""Training objectives (registry): DDPM eps / v prediction, EDM2 preconditioning, flow matching (SiT linear path).

Every objective samples a noise level per sample with a noise sampler, noises x0, calls the model and returns a
dict of named per-sample terms (plus the model's auxiliary taps as `aux.<name>` and the sampled `noise_level`);
weights are applied by the training loop. An objective is a parameterisation (diffc.parameterizations: noise
level conversions and eps / denoiser / velocity from the model output, which the samplers share) plus its loss.
"""
from __future__ import annotations

import torch

from diffc.parameterizations import (DDPMParameterization, DDPMVParameterization, EDMParameterization,
                                     FlowParameterization, bcast, check_noise_kind)
from diffc.training.ddpm_vb import PosteriorTables, vb_term
from diffc.training.kinds import registering

OBJECTIVES: dict[str, type] = {}


register_objective = registering(OBJECTIVES)


def build_objective(cfg, interface):
    """Objective for a recipe's `objective` section (ObjectiveConfig or its dict) and a ModelInterface."""
    if isinstance(cfg, dict):
        from diffc.training.recipe_loader import converter
        from diffc.training.recipe import ObjectiveConfig
        cfg = converter.structure(cfg, ObjectiveConfig)
    cls = OBJECTIVES[cfg.kind]
    check_noise_kind(cfg.kind, cls.family, interface)
    return cls(cfg, interface)


def _per_sample_mse(a, b):
    return (a - b).square().flatten(1).mean(1)


class Objective:
    """The loss side of an objective; the class also inherits a diffc.parameterizations.Parameterization."""
    main_term = "mse"      # the term the loss weighting multiplies

    def _finish(self, terms, aux, level):
        for key, value in aux.items():
            if key in self.interface.aux_losses:
                terms[f"aux.{key}"] = value
        terms["noise_level"] = level
        return terms


@register_objective("ddpm_eps")
class DDPMObjective(Objective, DDPMParameterization):
    """DDPM (Ho et al. 2020) with an eps (or v) target; optional learned variance trained by L_vb (IDDPM)."""

    def __init__(self, cfg, interface):
        super().__init__(cfg, interface)
        self._posterior = PosteriorTables(self.betas)

    def target(self, x0, eps, abar):
        return eps

    def loss_terms(self, module, x0, cond, noise_sampler, generator):
        """L_simple = |eps - eps_hat|^2 at x_t = sqrt(abar) x0 + sqrt(1-abar) eps (Ho et al. Eq. 14), + L_vb."""
        level = self.shift_level(noise_sampler.sample(x0.shape[0], generator, self, x0.device))
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        abar = self._abar(level, x0)
        x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
        out, aux = module(x_t, level, cond)
        terms = {"mse": _per_sample_mse(out[:, :self.channels], self.target(x0, eps, abar))}
        if self.learned_variance:
            eps_hat = self.eps_from_output(out.detach(), x_t, level)
            terms["vb"] = self.cfg.vb_weight * vb_term(self._posterior, x0, x_t, level.long(), eps_hat,
                                                       out[:, self.channels:], self.alphas_cumprod)
        return self._finish(terms, aux, level)


@register_objective("ddpm_v")
class DDPMVObjective(DDPMObjective, DDPMVParameterization):
    """v-prediction (Salimans & Ho 2022, Sec. 4): target v = sqrt(abar) eps - sqrt(1-abar) x0."""

    def target(self, x0, eps, abar):
        return abar.sqrt() * eps - (1 - abar).sqrt() * x0


@register_objective("edm2")
class EDM2Objective(Objective, EDMParameterization):
    """EDM2 loss with learned log-variance weighting (Karras et al. 2024, Eq. 14-16, 21)."""
    main_term = "loss"

    def loss_terms(self, module, x0, cond, noise_sampler, generator):
        """lambda(sigma)/e^u |D - y|^2 + u, lambda = (sigma^2 + sd^2)/(sigma sd)^2 (EDM2 Eq. 21), mean over elements."""
        sigma = self.shift_level(noise_sampler.sample(x0.shape[0], generator, self, x0.device))
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype) * bcast(sigma, x0)
        denoised, aux = self.denoise_with_logvar(module, x0 + noise, sigma, cond)
        weight = (sigma ** 2 + self.sigma_data ** 2) / (sigma * self.sigma_data) ** 2
        err = _per_sample_mse(denoised, x0)
        logvar = aux.get("logvar")
        if logvar is None:
            terms = {"loss": weight * err}
        else:
            logvar = logvar.reshape(-1).to(err.dtype)
            terms = {"loss": weight / logvar.exp() * err + logvar}
        return self._finish(terms, aux, sigma)


@register_objective("flow")
class FlowObjective(Objective, FlowParameterization):
    """Flow matching on the SiT linear path x_t = t x1 + (1-t) x0, target x1 - x0 (Ma et al. 2024, Sec. 2)."""

    def loss_terms(self, module, x0, cond, noise_sampler, generator):
        """|v_theta(x_t, t) - (x1 - x0)|^2 (SiT velocity loss), x1 = data, x0 = noise."""
        t = self.shift_level(noise_sampler.sample(x0.shape[0], generator, self, x0.device))
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        tb = bcast(t, x0)
        x_t = tb * x0 + (1 - tb) * noise
        out, aux = module(x_t, t, cond)
        terms = {"mse": _per_sample_mse(out[:, :self.channels], x0 - noise)}
        return self._finish(terms, aux, t)
