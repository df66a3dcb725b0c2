"""What a model's output means, per objective family: the conversions training and sampling share.

A parameterisation turns the compiled model `pred, aux = model(x, noise_level, cond)` (diffc.interface) into
the quantity a sampler integrates (DDPM eps, EDM denoiser D, flow velocity v) and converts noise levels between
the model's own unit, a `fraction` (0 clean .. 1 noise) and log-SNR. Training objectives
(diffc.training.objectives) subclass these and add their loss; samplers and inference loading use them alone,
so that sampling never imports training.
"""
from __future__ import annotations

import math

import attrs
import cattrs
import torch

from diffc import schedules
from diffc.bounds import NON_NEGATIVE, POSITIVE, bound
from diffc.errors import UserError

NOISE_KIND_OF_FAMILY = {"ddpm": "timestep", "edm": "sigma", "flow": "time"}
OBJECTIVE_KINDS = ("ddpm_eps", "ddpm_v", "edm2", "flow")


@attrs.define
class ObjectiveConfig:
    """The recipe's `objective:` section (diffc.training.recipe); checkpoints store it as plain data."""
    kind: str = attrs.field(default="ddpm_eps", metadata={"choices": OBJECTIVE_KINDS})
    learned_variance: bool | None = None      # None: on when the model outputs 2*C channels (DiT learn_sigma)
    vb_weight: float = attrs.field(default=1.0, metadata=bound(NON_NEGATIVE))  # IDDPM variational term weight
    sigma_data: float = attrs.field(default=0.5, metadata=bound(POSITIVE))
    shift: float = attrs.field(default=1.0, metadata=bound(POSITIVE))  # resolution shift r: log-SNR - 2 ln r


attrs.resolve_types(ObjectiveConfig)


def bcast(v, like):
    """A per-sample [N] tensor shaped to broadcast against `like` [N, ...], in its dtype."""
    return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def check_noise_kind(kind: str, family: str, interface) -> None:
    """UserError unless the spec's noise input is the unit the objective `kind` (of `family`) expects."""
    wanted = NOISE_KIND_OF_FAMILY[family]
    if interface.noise.kind != wanted:
        raise UserError(f"objective '{kind}' needs a model whose noise input is {wanted}, but the spec declares "
                        f"'{interface.noise.name}: {interface.noise.kind}'",
                        help={"timestep": "use ddpm_eps or ddpm_v", "sigma": "use edm2",
                              "time": "use flow"}[interface.noise.kind])


class Parameterization:
    family = ""

    def __init__(self, cfg, interface):
        self.cfg = cfg
        self.interface = interface
        self.channels = interface.sample_shape[0]

    def shift_level(self, level):
        """Resolution shift: log-SNR - 2 ln r (Berrada et al. Sec. 4.2)."""
        if self.cfg.shift == 1.0:
            return level
        return self.level_from_logsnr(self.logsnr(level) - 2 * math.log(self.cfg.shift))


class DDPMParameterization(Parameterization):
    """DDPM (Ho et al. 2020): integer timesteps of a beta schedule; the model predicts eps (or v)."""
    family = "ddpm"
    parameterization = "eps"

    def __init__(self, cfg, interface):
        super().__init__(cfg, interface)
        self.steps = interface.noise.steps
        self.betas = schedules.ddpm_betas(interface.noise.schedule, self.steps)
        self.alphas_cumprod = torch.cumprod(1 - self.betas, 0)
        self._logsnr_table = torch.log(self.alphas_cumprod) - torch.log1p(-self.alphas_cumprod)
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
        return bcast(self.alphas_cumprod.to(like.device)[level.long()], like)

    def eps_from_output(self, out, x_t, t):
        """eps from the model output: first C channels; v converted by eps = sqrt(abar) v + sqrt(1-abar) x_t."""
        pred = out[:, :self.channels]
        if self.parameterization == "eps":
            return pred
        abar = self._abar(t, x_t)
        return abar.sqrt() * pred + (1 - abar).sqrt() * x_t


class DDPMVParameterization(DDPMParameterization):
    """v-prediction (Salimans & Ho 2022, Sec. 4): v = sqrt(abar) eps - sqrt(1-abar) x0."""
    parameterization = "v"

    def target_factor(self, level):
        """(v-space MSE) / (x0-space MSE) = SNR + 1."""
        return self.logsnr(level).exp() + 1


class EDMParameterization(Parameterization):
    """EDM (Karras et al. 2022/2024): sigma levels, preconditioned denoiser D(x; sigma)."""
    family = "edm"

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
        c_skip, c_out, c_in, _ = schedules.edm_precond(bcast(sigma, x), self.sigma_data)
        out, aux = module(c_in * x, sigma, cond)
        return c_skip * x + c_out * out[:, :self.channels], aux

    def denoise(self, module, x, sigma, cond):
        """D(x; sigma) (EDM2 Eq. 7)."""
        return self.denoise_with_logvar(module, x, sigma, cond)[0]


class FlowParameterization(Parameterization):
    """Flow matching on the SiT linear path x_t = t x1 + (1-t) x0 (Ma et al. 2024, Sec. 2): velocity output."""
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


PARAMETERIZATIONS: dict[str, type] = {"ddpm_eps": DDPMParameterization, "ddpm_v": DDPMVParameterization,
                                      "edm2": EDMParameterization, "flow": FlowParameterization}


def build_parameterization(objective: dict, interface, where: str = "<checkpoint>") -> Parameterization:
    """The parameterisation of a stored `objective:` section (plain data, as checkpoints keep it)."""
    try:
        cfg = cattrs.structure(objective, ObjectiveConfig)
    except Exception as exc:  # cattrs raises ValueError/TypeError/ClassValidationError for bad leaves
        raise UserError(f"invalid objective section ({type(exc).__name__})", file=where,
                        help="the file is damaged or not a diffc checkpoint") from None
    cls = PARAMETERIZATIONS.get(cfg.kind)
    if cls is None:
        raise UserError(f"unknown objective '{cfg.kind}'", file=where,
                        help="known: " + ", ".join(PARAMETERIZATIONS))
    check_noise_kind(cfg.kind, cls.family, interface)
    return cls(cfg, interface)
