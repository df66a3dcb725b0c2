"""Objectives, weightings and noise samplers against hand computations of their formulas."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_toy import toy_built, toy_interface  # noqa: E402

from diffc.errors import UserError
from diffc.training.noise import build_noise_sampler
from diffc.training.objectives import build_objective
from diffc.training.recipe import NoiseConfig, ObjectiveConfig, WeightingConfig
from diffc.training.weightings import build_weighting


class Fixed:
    """A noise sampler returning given levels."""
    def __init__(self, levels):
        self.levels = torch.tensor(levels)

    def sample(self, n, generator, objective, device="cpu"):
        return self.levels.float()


class Linear(torch.nn.Module):
    """pred = a x + b on every output channel; aux carries a fixed logvar."""
    def __init__(self, out_channels=1, logvar=None):
        super().__init__()
        self.out_channels, self.logvar = out_channels, logvar

    def forward(self, x, level, cond):
        out = torch.cat([0.3 * x + 0.1] * self.out_channels, 1)
        return out, ({} if self.logvar is None else {"logvar": self.logvar})


def abar_linear(T=1000):
    betas = np.linspace(1e-4, 0.02, T)
    return np.cumprod(1 - betas)


X0 = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))


def _eps():
    return torch.randn(X0.shape, generator=torch.Generator().manual_seed(7)).double()


def _terms(kind, levels, module, interface):
    obj = build_objective(ObjectiveConfig(kind=kind), interface)
    return obj, obj.loss_terms(module, X0, {}, Fixed(levels), torch.Generator().manual_seed(7))


def test_ddpm_eps_loss_matches_hand_computation():
    _, terms = _terms("ddpm_eps", [0, 500, 999], Linear(), toy_interface("timestep"))
    a = torch.tensor(abar_linear()[[0, 500, 999]]).view(-1, 1, 1, 1)
    x_t = a.sqrt() * X0.double() + (1 - a).sqrt() * _eps()
    want = ((0.3 * x_t + 0.1 - _eps()) ** 2).mean((1, 2, 3))
    assert torch.allclose(terms["mse"].double(), want, rtol=1e-5)
    assert terms["noise_level"].tolist() == [0, 500, 999]


def test_ddpm_v_loss_and_eps_conversion():
    obj, terms = _terms("ddpm_v", [10, 400, 900], Linear(), toy_interface("timestep"))
    a = torch.tensor(abar_linear()[[10, 400, 900]]).view(-1, 1, 1, 1)
    eps, x0 = _eps(), X0.double()
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    assert torch.allclose(terms["mse"].double(), ((0.3 * x_t + 0.1 - v) ** 2).mean((1, 2, 3)), rtol=1e-5)
    back = obj.eps_from_output(v.float(), x_t.float(), torch.tensor([10.0, 400.0, 900.0]))
    assert torch.allclose(back.double(), eps, atol=1e-5)


def test_learned_variance_vb_is_zero_at_the_true_posterior():
    interface = toy_interface("timestep", out_channels=2)
    obj = build_objective(ObjectiveConfig(kind="ddpm_eps"), interface)
    assert obj.learned_variance and obj.parameterization == "eps"
    eps = _eps().float()

    class Oracle(torch.nn.Module):        # predicts the true noise and frac = 0 (the posterior variance)
        def forward(self, x, level, cond):
            return torch.cat([eps, -torch.ones_like(x)], 1), {}
    terms = obj.loss_terms(Oracle(), X0, {}, Fixed([5, 300, 800]), torch.Generator().manual_seed(7))
    assert terms["mse"].abs().max() < 1e-10
    assert terms["vb"].abs().max() < 1e-5
    wrong = obj.loss_terms(Linear(2), X0, {}, Fixed([0, 300, 800]), torch.Generator().manual_seed(7))
    assert (wrong["vb"] > 1e-3).all()


def test_edm2_loss_with_learned_logvar():
    logvar = torch.tensor([0.2, -0.1, 0.5])
    sigma = torch.tensor([0.1, 1.0, 5.0], dtype=torch.float64)
    obj, terms = _terms("edm2", sigma.tolist(), Linear(logvar=logvar), toy_interface("sigma"))
    sd = 0.5
    s = sigma.view(-1, 1, 1, 1)
    x = X0.double() + _eps() * s
    c_skip, c_out, c_in = sd ** 2 / (s ** 2 + sd ** 2), s * sd / (s ** 2 + sd ** 2).sqrt(), 1 / (s ** 2 + sd ** 2).sqrt()
    denoised = c_skip * x + c_out * (0.3 * c_in * x + 0.1)
    lam = (sigma ** 2 + sd ** 2) / (sigma * sd) ** 2
    want = lam / logvar.double().exp() * ((denoised - X0.double()) ** 2).mean((1, 2, 3)) + logvar.double()
    assert torch.allclose(terms["loss"].double(), want, rtol=1e-4)
    assert obj.sigma_data == 0.5 and obj.family == "edm"


def test_flow_velocity_loss():
    obj, terms = _terms("flow", [0.0, 0.3, 0.9], Linear(), toy_interface("time"))
    t = torch.tensor([0.0, 0.3, 0.9], dtype=torch.float64).view(-1, 1, 1, 1)
    x_t = t * X0.double() + (1 - t) * _eps()
    want = ((0.3 * x_t + 0.1 - (X0.double() - _eps())) ** 2).mean((1, 2, 3))
    assert torch.allclose(terms["mse"].double(), want, rtol=1e-5)
    v = obj.velocity(Linear(2), X0, torch.zeros(3), {})
    assert v.shape == X0.shape


def test_aux_losses_come_back_as_terms():
    built = toy_built()
    obj = build_objective(ObjectiveConfig(), built.interface)
    terms = obj.loss_terms(built.module, X0, {"y": torch.tensor([1, 2, 3])}, Fixed([1, 2, 3]), torch.Generator())
    assert set(terms) == {"mse", "aux.smooth", "noise_level"}


def test_objective_noise_kind_mismatch_is_a_user_error():
    with pytest.raises(UserError, match="needs a model whose noise input is time"):
        build_objective(ObjectiveConfig(kind="flow"), toy_interface("timestep"))


def _weights(kind, objective_kind, levels, **kw):
    noise = {"ddpm_eps": "timestep", "ddpm_v": "timestep", "flow": "time"}[objective_kind]
    obj = build_objective(ObjectiveConfig(kind=objective_kind), toy_interface(noise))
    weighting = build_weighting(WeightingConfig(kind=kind, **kw), obj)
    return weighting, weighting.weights(torch.tensor(levels, dtype=torch.float32)).double()


def test_min_snr_and_p2_weights():
    a = abar_linear()[[0, 200, 999]]
    snr = torch.tensor(a / (1 - a))
    _, w = _weights("min_snr", "ddpm_eps", [0, 200, 999], gamma=5.0)
    assert torch.allclose(w, snr.clamp(max=5) / snr, rtol=1e-5)
    _, w = _weights("min_snr", "ddpm_v", [0, 200, 999], gamma=5.0)
    assert torch.allclose(w, snr.clamp(max=5) / (snr + 1), rtol=1e-5)
    _, w = _weights("p2", "ddpm_eps", [0, 200, 999], gamma=1.0, k=1.0)
    assert torch.allclose(w, 1 / (1 + snr), rtol=1e-5)
    t = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)
    _, w = _weights("min_snr", "flow", t.tolist(), gamma=5.0)
    snr_flow = (t / (1 - t)) ** 2
    assert torch.allclose(w, snr_flow.clamp(max=5) * (1 - t) ** 2, rtol=1e-5)


def test_ant_uw_weights_intervals_and_stratified_noise():
    weighting, _ = _weights("ant_uw", "ddpm_eps", [0], intervals=8)
    with torch.no_grad():
        weighting.log_variance.copy_(torch.arange(8.0) / 10)
    levels = torch.tensor([0.0, 124.0, 125.0, 999.0])
    assert weighting.interval(levels).tolist() == [0, 0, 1, 7]
    want = 0.5 * torch.exp(-torch.tensor([0.0, 0.0, 0.1, 0.7]))
    assert torch.allclose(weighting.weights(levels), want)
    assert math.isclose(float(weighting.extra_terms()["ant_uw.reg"]), 0.5 * 2.8, rel_tol=1e-6)
    sampler = build_noise_sampler(NoiseConfig(kind="uniform"), weighting.objective, weighting.strata)
    levels = sampler.sample(64, torch.Generator().manual_seed(0), weighting.objective)
    assert torch.bincount(weighting.interval(levels), minlength=8).tolist() == [8] * 8
    with pytest.raises(UserError, match="stratified"):
        build_noise_sampler(NoiseConfig(kind="lognormal"), weighting.objective, weighting.strata)


def test_noise_samplers_distributions():
    gen = torch.Generator().manual_seed(0)
    edm = build_objective(ObjectiveConfig(kind="edm2"), toy_interface("sigma"))
    sigma = build_noise_sampler(NoiseConfig(kind="lognormal", mean=-0.4, std=1.0), edm).sample(20000, gen, edm)
    assert abs(sigma.log().mean() + 0.4) < 0.03 and abs(sigma.log().std() - 1.0) < 0.03
    flow = build_objective(ObjectiveConfig(kind="flow"), toy_interface("time"))
    t = build_noise_sampler(NoiseConfig(kind="logit_normal", mean=0.0, std=1.0), flow).sample(20000, gen, flow)
    logit = torch.log((1 - t) / t)
    assert abs(logit.mean()) < 0.03 and abs(logit.std() - 1.0) < 0.03
    ddpm = build_objective(ObjectiveConfig(), toy_interface("timestep"))
    steps = build_noise_sampler(NoiseConfig(kind="uniform"), ddpm).sample(20000, gen, ddpm)
    assert steps.min() == 0 and steps.max() == 999 and torch.equal(steps, steps.round())


def test_stage_aware_sampler_respects_boundaries():
    interface = toy_interface("timestep", stages=(("logsnr", -1.84), ("logsnr", -4.0)))
    obj = build_objective(ObjectiveConfig(), interface)
    sampler = build_noise_sampler(NoiseConfig(kind="stage_aware", stage_weights=[1, 0, 1]), obj)
    levels = sampler.sample(4000, torch.Generator().manual_seed(0), obj)
    logsnr = obj.logsnr(levels)
    assert ((logsnr > -1.9) | (logsnr < -3.95)).all()
    with pytest.raises(UserError, match="@stage"):
        build_noise_sampler(NoiseConfig(kind="stage_aware"), build_objective(ObjectiveConfig(), toy_interface()))


def test_edm2_refuses_an_extra_weighting():
    with pytest.raises(UserError, match="own learned weighting"):
        build_weighting(WeightingConfig(kind="min_snr"),
                        build_objective(ObjectiveConfig(kind="edm2"), toy_interface("sigma")))
