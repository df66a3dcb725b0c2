"""Noise-level samplers (registry): uniform, log-normal, logit-normal, stage-aware.

A sampler draws n noise levels in the objective's parameterisation; it works through the objective's
conversions (`level_from_fraction`, `level_from_logsnr`) so each sampler serves every objective.
"""
from __future__ import annotations

import math

import torch

from diffc.errors import UserError
from diffc.training.kinds import registering

NOISE_SAMPLERS: dict[str, type] = {}


register_noise_sampler = registering(NOISE_SAMPLERS)


def build_noise_sampler(cfg, objective, strata: int | None = None):
    if strata and cfg.kind != "uniform":
        raise UserError(f"the loss weighting needs stratified uniform noise levels, but noise.kind is '{cfg.kind}'",
                        help="set noise: {kind: uniform}")
    return NOISE_SAMPLERS[cfg.kind](cfg, objective, strata)


class NoiseSampler:
    def __init__(self, cfg, objective, strata=None):
        self.cfg = cfg
        self.strata = strata


@register_noise_sampler("uniform")
class UniformNoise(NoiseSampler):
    """Noise fraction u ~ U[0, 1]; with K strata, sample i draws from stratum floor(i K / n) (ANT-UW, Go et al. 2023)."""

    def sample(self, n, generator, objective, device="cpu"):
        u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        if self.strata:
            stratum = torch.arange(n, device=device) * self.strata // n
            u = (stratum + u) / self.strata
        return objective.level_from_fraction(u)


@register_noise_sampler("lognormal")
class LogNormalNoise(NoiseSampler):
    """ln sigma ~ N(P_mean, P_std^2) (EDM, Karras et al. 2022, Sec. 5), mapped through log-SNR = -2 ln sigma."""

    def sample(self, n, generator, objective, device="cpu"):
        log_sigma = self.cfg.mean + self.cfg.std * torch.randn(n, generator=generator, device=device, dtype=torch.float64)
        return objective.level_from_logsnr(-2 * log_sigma)


@register_noise_sampler("logit_normal")
class LogitNormalNoise(NoiseSampler):
    """Noise fraction u = sigmoid(m + s z), z ~ N(0, 1) (Esser et al. 2024, Eq. 19)."""

    def sample(self, n, generator, objective, device="cpu"):
        z = torch.randn(n, generator=generator, device=device, dtype=torch.float64)
        return objective.level_from_fraction(torch.sigmoid(self.cfg.mean + self.cfg.std * z))


@register_noise_sampler("stage_aware")
class StageAwareNoise(NoiseSampler):
    """Pick a stage (Zhang et al. 2024, multi-stage; equal odds by default), then a uniform fraction inside it."""

    def __init__(self, cfg, objective, strata=None):
        super().__init__(cfg, objective, strata)
        stages = objective.interface.stages
        if not stages:
            raise UserError("noise kind 'stage_aware' needs a model with @stage boundaries", help="use kind: uniform")
        edges = sorted(float(objective.fraction(self._level(objective, kind, value))) for kind, value in stages)
        self.edges = torch.tensor([0.0, *edges, 1.0], dtype=torch.float64)
        count = len(self.edges) - 1
        weights = cfg.stage_weights or [1.0] * count
        if len(weights) != count:
            raise UserError(f"noise.stage_weights has {len(weights)} entries but the model has {count} stages")
        self.weights = torch.tensor(weights, dtype=torch.float64)

    @staticmethod
    def _level(objective, kind, value):
        if kind == "logsnr":
            return objective.level_from_logsnr(torch.tensor([float(value)]))
        if kind == "sigma":
            return objective.level_from_logsnr(torch.tensor([-2 * math.log(float(value))]))
        raise UserError(f"stage boundary kind '{kind}' is not supported by stage-aware sampling (logsnr | sigma)")

    def sample(self, n, generator, objective, device="cpu"):
        stage = torch.multinomial(self.weights.to(device), n, replacement=True, generator=generator)
        edges = self.edges.to(device)
        lo, hi = edges[stage], edges[stage + 1]
        u = lo + (hi - lo) * torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        return objective.level_from_fraction(u)
