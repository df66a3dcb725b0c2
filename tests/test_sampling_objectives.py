"""The generate() adapters on the training engineer's objective classes: an exact model expressed in each
parameterisation must give the same samples as the sampler functions driven by the exact prediction directly."""
import math

import pytest
import torch

from diffc.interface import ModelInterface, NoiseInput
from diffc.sampling import ddpm, edm, flow
from diffc.sampling.generate import SamplerConfig, sample_images
from diffc.sampling.noise import SeededNoise
from diffc.schedules import edm_precond
from diffc.training.objectives import build_objective

MU, S = 0.3, 0.5
SHAPE = (1, 4, 4)


class Bundle:
    def __init__(self, kind, noise, forward, out_channels=1, **cfg):
        self.interface = ModelInterface(SHAPE, out_channels, noise)
        self.objective = build_objective(dict(kind=kind, **cfg), self.interface)
        self.module = Exact(self.interface, forward)


class Exact(torch.nn.Module):
    def __init__(self, interface, forward):
        super().__init__()
        self.interface, self.fn = interface, forward

    def forward(self, x, level, cond):
        return self.fn(x, level), {}


def bcast(v, x):
    return v.view(-1, *[1] * (x.dim() - 1)).to(x.dtype)


def ddpm_exact_eps(abar_table):
    def eps(x, t):
        abar = bcast(abar_table[t.long()], x)
        return (1 - abar).sqrt() * (x - abar.sqrt() * MU) / (abar * S ** 2 + 1 - abar)
    return eps


def test_ddpm_eps_and_v_parameterisations_sample_identically():
    noise = NoiseInput("t", "timestep", steps=1000)
    eps_bundle = Bundle("ddpm_eps", noise, None)
    abar_table = eps_bundle.objective.alphas_cumprod
    exact = ddpm_exact_eps(abar_table)
    eps_bundle.module.fn = exact

    def v_output(x, t):
        abar = bcast(abar_table[t.long()], x)
        return (exact(x, t) - (1 - abar).sqrt() * x) / abar.sqrt()   # eps = sqrt(abar) v + sqrt(1-abar) x_t
    v_bundle = Bundle("ddpm_v", noise, v_output)
    config = SamplerConfig("ddim", steps=20)
    a = sample_images(eps_bundle, range(8), config)
    b = sample_images(v_bundle, range(8), config)
    direct = ddpm.ddim(lambda x, t: (exact(x, t), None), SeededNoise(range(8)).randn(SHAPE), abar_table,
                       ddpm.respaced_timesteps(1000, 20), clip=True)    # a pixel model: x0 clipped (ADM default)
    assert torch.allclose(a, direct, atol=1e-6) and torch.allclose(a, b, atol=1e-4)


def test_ddpm_learned_variance_channels_reach_the_sampler():
    noise = NoiseInput("t", "timestep", steps=1000)
    small = Bundle("ddpm_eps", noise, None, out_channels=2)
    exact = ddpm_exact_eps(small.objective.alphas_cumprod)
    assert small.objective.learned_variance
    small.module.fn = lambda x, t: torch.cat([exact(x, t), -torch.ones_like(x)], 1)    # -1: posterior variance
    large = Bundle("ddpm_eps", noise, lambda x, t: torch.cat([exact(x, t), torch.ones_like(x)], 1),  # +1: beta
                   out_channels=2)
    config = SamplerConfig("ddpm", steps=10)
    spread_small = sample_images(small, range(400), config).std()
    spread_large = sample_images(large, range(400), config).std()
    assert spread_large > spread_small + 0.01


def test_edm2_preconditioned_model_matches_exact_denoiser():
    def raw_output(x_in, sigma):
        c_skip, c_out, c_in, _ = edm_precond(bcast(sigma, x_in), 0.5)
        x = x_in / c_in
        denoised = MU + S ** 2 / (S ** 2 + bcast(sigma, x) ** 2) * (x - MU)
        return (denoised - c_skip * x) / c_out                  # F such that c_skip x + c_out F = D_exact
    bundle = Bundle("edm2", NoiseInput("sigma", "sigma"), raw_output)
    out = sample_images(bundle, range(8), SamplerConfig("heun", steps=32))
    z = SeededNoise(range(8)).randn(SHAPE)
    direct = edm.edm_sample(lambda x, s: MU + S ** 2 / (S ** 2 + bcast(s, x) ** 2) * (x - MU), z, edm.edm_sigmas(32))
    assert torch.allclose(out, direct, atol=1e-4)
    exact = MU + S / math.sqrt(S ** 2 + 80.0 ** 2) * (80.0 * z - MU)
    assert (out - exact).abs().max() < 0.05


@pytest.mark.parametrize("shift", [1.0, 2.0])
def test_flow_objective_velocity_and_its_shift(shift):
    def velocity(x, t):
        t = bcast(t, x)
        var = t ** 2 * S ** 2 + (1 - t) ** 2
        return MU + t * S ** 2 * (x - t * MU) / var - (1 - t) * (x - t * MU) / var
    bundle = Bundle("flow", NoiseInput("t", "time"), velocity, shift=shift)
    out = sample_images(bundle, range(8), SamplerConfig("ode", steps=40))
    z = SeededNoise(range(8)).randn(SHAPE)
    direct = flow.flow_ode(velocity, z, steps=40, shift=shift)
    assert torch.allclose(out, direct, atol=1e-6)
    assert (out - (MU + S * z)).abs().max() < 1e-2
