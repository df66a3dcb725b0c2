"""Training objectives (registry): DDPM eps / v prediction, EDM2 preconditioning, flow matching (SiT linear path).

Every objective samples a noise level per sample with a noise sampler, noises x0, calls the model and returns a
dict of named per-sample terms (plus the model's auxiliary taps as `aux.<name>` and the sampled `noise_level`);
weights are applied by the training loop. Noise levels are in the model's own parameterisation (diffc.interface).
Conversions used by the samplers: `fraction` (0 clean .. 1 noise), `logsnr`, and their inverses.
"""
from __future__ import annotations

import math

import torch

from diffc import schedules
from diffc.errors import UserError
from diffc.training.kinds import registering
from diffc.training.ddpm_vb import PosteriorTables, vb_term

OBJECTIVES: dict[str, type] = {}
NOISE_KIND_OF_FAMILY = {"ddpm": "timestep", "edm": "sigma", "flow": "time"}


register_objective = registering(OBJECTIVES)


def build_objective(cfg, interface):
    """Objective for a recipe's `objective` section (ObjectiveConfig or its dict) and a ModelInterface."""
    if isinstance(cfg, dict):
        from diffc.training.recipe_loader import converter
        from diffc.training.recipe import ObjectiveConfig
        cfg = converter.structure(cfg, ObjectiveConfig)
    cls = OBJECTIVES[cfg.kind]
    wanted = NOISE_KIND_OF_FAMILY[cls.family]
    if interface.noise.kind != wanted:
        raise UserError(f"objective '{cfg.kind}' needs a model whose noise input is {wanted}, but the spec declares "
                        f"'{interface.noise.name}: {interface.noise.kind}'",
                        help={"timestep": "use ddpm_eps or ddpm_v", "sigma": "use edm2",
                              "time": "use flow"}[interface.noise.kind])
    return cls(cfg, interface)


def _per_sample_mse(a, b):
    return (a - b).square().flatten(1).mean(1)


def _bcast(v, like):
    return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


class Objective:
    family = ""
    main_term = "mse"      # the term the loss weighting multiplies

    def __init__(self, cfg, interface):
        self.cfg = cfg
        self.interface = interface
        self.channels = interface.sample_shape[0]

    def shift_level(self, level):
        """Resolution shift: log-SNR - 2 ln r (Berrada et al. Sec. 4.2)."""
        if self.cfg.shift == 1.0:
            return level
        return self.level_from_logsnr(self.logsnr(level) - 2 * math.log(self.cfg.shift))

    def _finish(self, terms, aux, level):
        for key, value in aux.items():
            if key in self.interface.aux_losses:
                terms[f"aux.{key}"] = value
        terms["noise_level"] = level
        return terms


@register_objective("ddpm_eps")
class DDPMObjective(Objective):
    """DDPM (Ho et al. 2020) with an eps (or v) target; optional learned variance trained by L_vb (IDDPM)."""
    family = "ddpm"
    parameterization = "eps"

    def __init__(self, cfg, interface):
        super().__init__(cfg, interface)
        self.steps = interface.noise.steps
        betas = schedules.ddpm_betas(interface.noise.schedule, self.steps)
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)
        self._logsnr_table = torch.log(self.alphas_cumprod) - torch.log1p(-self.alphas_cumprod)
        self._posterior = PosteriorTables(betas)
        learned = interface.out_channels == 2 * self.channels
        self.learned_variance = learned if cfg.learned_variance is None else cfg.learned_variance
        if self.learned_variance and not learned:
            raise UserError(f"learned_variance needs a model with {2 * self.channels} output channels, "
                            f"this one has {interface.out_channels}")

    def fraction(self, level):
        return (level.double() + 0.5) / self.steps

    def level_from_fraction(self, u):
        return (u.double() * self.steps).floor().clamp(0, self.steps - 1).float()

    def logsnr(self, level):
        return self._logsnr_table.to(level.device)[level.long()]

    def level_from_logsnr(self, value):
        """Nearest timestep to a log-SNR (the table decreases with t)."""
        table = self._logsnr_table.to(value.device)
        return (table[None, :] - value.double()[:, None]).abs().argmin(1).float()

    def target_factor(self, level):
        """(target-space MSE) / (x0-space MSE): SNR for eps (Hang et al. 2023, Eq. 6)."""
        return self.logsnr(level).exp()

    def _abar(self, level, like):
        return _bcast(self.alphas_cumprod.to(like.device)[level.long()], like)

    def eps_from_output(self, out, x_t, t):
        """eps from the model output: first C channels; v converted by eps = sqrt(abar) v + sqrt(1-abar) x_t."""
        pred = out[:, :self.channels]
        if self.parameterization == "eps":
            return pred
        abar = self._abar(t, x_t)
        return abar.sqrt() * pred + (1 - abar).sqrt() * x_t

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
class DDPMVObjective(DDPMObjective):
    """v-prediction (Salimans & Ho 2022, Sec. 4): v = sqrt(abar) eps - sqrt(1-abar) x0."""
    parameterization = "v"

    def target(self, x0, eps, abar):
        return abar.sqrt() * eps - (1 - abar).sqrt() * x0

    def target_factor(self, level):
        """(v-space MSE) / (x0-space MSE) = SNR + 1."""
        return self.logsnr(level).exp() + 1


@register_objective("edm2")
class EDM2Objective(Objective):
    """EDM2 loss with learned log-variance weighting (Karras et al. 2024, Eq. 14-16, 21)."""
    family = "edm"
    main_term = "loss"

    def __init__(self, cfg, interface):
        super().__init__(cfg, interface)
        self.sigma_data = cfg.sigma_data

    def fraction(self, level):
        return level.double() / (1 + level.double())

    def level_from_fraction(self, u):
        """sigma = u / (1 - u): the rectified-flow time of the same log-SNR."""
        u = u.double()
        return (u / (1 - u)).clamp(0.002, 80.0).float()

    def logsnr(self, level):
        return schedules.logsnr_from_sigma(level)

    def level_from_logsnr(self, value):
        return (-value.double() / 2).exp().float()

    def denoise_with_logvar(self, module, x, sigma, cond):
        """D(x; sigma) = c_skip x + c_out F(c_in x; sigma) (EDM2 Eq. 7), and the model's logvar tap u(sigma)."""
        c_skip, c_out, c_in, _ = schedules.edm_precond(_bcast(sigma, x), self.sigma_data)
        out, aux = module(c_in * x, sigma, cond)
        return c_skip * x + c_out * out[:, :self.channels], aux

    def denoise(self, module, x, sigma, cond):
        """D(x; sigma) (EDM2 Eq. 7)."""
        return self.denoise_with_logvar(module, x, sigma, cond)[0]

    def loss_terms(self, module, x0, cond, noise_sampler, generator):
        """lambda(sigma)/e^u |D - y|^2 + u, lambda = (sigma^2 + sd^2)/(sigma sd)^2 (EDM2 Eq. 21), mean over elements."""
        sigma = self.shift_level(noise_sampler.sample(x0.shape[0], generator, self, x0.device))
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype) * _bcast(sigma, x0)
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
class FlowObjective(Objective):
    """Flow matching on the SiT linear path x_t = t x1 + (1-t) x0, target x1 - x0 (Ma et al. 2024, Sec. 2)."""
    family = "flow"

    def fraction(self, level):
        return 1 - level.double()

    def level_from_fraction(self, u):
        return (1 - u.double()).float()

    def logsnr(self, level):
        return schedules.logsnr_from_time(level)

    def level_from_logsnr(self, value):
        return torch.sigmoid(value.double() / 2).float()

    def shift_level(self, level):
        """Resolution shift of the flow time (Berrada et al. Sec. 4.2), via diffc.schedules.rf_shift_time."""
        return level if self.cfg.shift == 1.0 else schedules.rf_shift_time(level, self.cfg.shift)

    def target_factor(self, level):
        """(velocity MSE) / (x1 MSE) = 1 / (1-t)^2, since x1_hat - x1 = (1-t)(v_hat - v)."""
        return 1 / (1 - level.double()).clamp(min=1e-3) ** 2

    def velocity(self, module, x, t, cond):
        """v(x, t): first C output channels, as SiT does with learn_sigma."""
        return module(x, t, cond)[0][:, :self.channels]

    def loss_terms(self, module, x0, cond, noise_sampler, generator):
        """|v_theta(x_t, t) - (x1 - x0)|^2 (SiT velocity loss), x1 = data, x0 = noise."""
        t = self.shift_level(noise_sampler.sample(x0.shape[0], generator, self, x0.device))
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        tb = _bcast(t, x0)
        x_t = tb * x0 + (1 - tb) * noise
        out, aux = module(x_t, t, cond)
        terms = {"mse": _per_sample_mse(out[:, :self.channels], x0 - noise)}
        return self._finish(terms, aux, t)
