"""Loss weightings over noise levels (registry): none, Min-SNR-gamma, P2, ANT-UW.

A weighting returns per-sample weights for the objective's main term (in the objective's target space, via
`objective.target_factor`) and optional extra terms; ANT-UW owns learnable parameters in their own optimiser group.
"""
from __future__ import annotations

import torch
from torch import nn

from diffc.errors import UserError
from diffc.training.kinds import registering

WEIGHTINGS: dict[str, type] = {}


register_weighting = registering(WEIGHTINGS)


def build_weighting(cfg, objective):
    if cfg.kind != "none" and objective.family == "edm":
        raise UserError(f"weighting '{cfg.kind}' does not apply to edm2, whose loss carries its own learned weighting",
                        help="use weighting: {kind: none}")
    return WEIGHTINGS[cfg.kind](cfg, objective)


class Weighting(nn.Module):
    strata = None           # ANT-UW asks the noise sampler for one stratum per interval

    def __init__(self, cfg, objective):
        super().__init__()
        self.cfg = cfg
        self.objective = objective

    def extra_terms(self) -> dict:
        return {}


@register_weighting("none")
class NoWeighting(Weighting):
    def weights(self, level):
        return torch.ones_like(level, dtype=torch.float32)


@register_weighting("min_snr")
class MinSNRWeighting(Weighting):
    """w = min(SNR, gamma) / (target factor): min(SNR, gamma)/SNR for eps (Hang et al. 2023, Eq. 7)."""

    def weights(self, level):
        snr = self.objective.logsnr(level).exp()
        return (snr.clamp(max=self.cfg.gamma) / self.objective.target_factor(level)).float()


@register_weighting("p2")
class P2Weighting(Weighting):
    """w = 1 / (k + SNR)^gamma on the eps loss (Choi et al. 2022, Eq. 8), moved to the objective's target space."""

    def weights(self, level):
        snr = self.objective.logsnr(level).exp()
        eps_weight = 1 / (self.cfg.k + snr) ** self.cfg.gamma
        return (eps_weight * snr / self.objective.target_factor(level)).float()


@register_weighting("ant_uw")
class UncertaintyWeighting(Weighting):
    """ANT-UW: total = sum_k 0.5 (exp(-s_k) l_k + s_k) over K noise intervals (Go et al. 2023, Eq. 4), s_k learned."""

    def __init__(self, cfg, objective):
        super().__init__(cfg, objective)
        self.strata = cfg.intervals
        self.log_variance = nn.Parameter(torch.zeros(cfg.intervals))

    def interval(self, level):
        return (self.objective.fraction(level) * self.strata).floor().long().clamp(0, self.strata - 1)

    def weights(self, level):
        return 0.5 * torch.exp(-self.log_variance)[self.interval(level).to(self.log_variance.device)]

    def extra_terms(self):
        """0.5 sum_k s_k, once per step (a scalar term)."""
        return {"ant_uw.reg": 0.5 * self.log_variance.sum()}
