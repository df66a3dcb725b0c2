"""diffusers' schedulers as samplers (diffc.sampling.schedulers): DDIM through diffusers equals diffc's DDIM given
the same schedule, timesteps and noise; DPM-Solver++ / UniPC / Euler ancestral reach the exact answer on Gaussian
toys for DDPM (eps and v) and flow models; seeds stay per sample; the CLI selects them."""
import json
import math

import numpy as np
import pytest
import torch
from test_sampling import ABAR, MU, S, ToyBundle, exact_eps, start_noise
from test_sampling_objectives import Bundle

from diffc.cli import main
from diffc.errors import UserError
from diffc.interface import NoiseInput
from diffc.sampling import ddpm, schedulers
from diffc.sampling.generate import SamplerConfig, generate, sample_images
from diffc.sampling.noise import SeededNoise

diffusers = pytest.importorskip("diffusers")


def nonlinear_eps(abar_table):
    """An eps model that is not affine in x (so every step's arithmetic matters): exact eps + 0.2 tanh(3x) t/T."""
    def eps(x, t):
        abar = abar_table.to(x.dtype)[t.long()].view(-1, 1, 1, 1)
        exact = (1 - abar).sqrt() * (x - abar.sqrt() * MU) / (abar * S ** 2 + 1 - abar)
        return exact + 0.2 * torch.tanh(3 * x) * (t.to(x.dtype) / len(abar_table)).view(-1, 1, 1, 1)
    return eps


@pytest.mark.parametrize("parameterization,eta,clip", [("eps", 0.0, False), ("v", 0.0, False), ("eps", 0.5, False),
                                                        ("v", 0.5, False), ("eps", 0.0, True), ("v", 0.5, True)])
def test_diffusers_ddim_equals_diffc_ddim_given_the_same_noise(parameterization, eta, clip):
    """float64 throughout; diffusers keeps its schedule scalars (abar and their square roots) in float32, so the
    two runs agree to the float32 rounding of those coefficients: < 1e-6 (measured 1.8e-7 at 20 steps)."""
    config = schedulers.ddpm_scheduler_config(ABAR, parameterization)
    scheduler = diffusers.DDIMScheduler(**config, clip_sample=clip, set_alpha_to_one=True)   # clip: ADM's, eps
    # re-derived from the clipped x0 (diffusers: use_clipped_model_output)
    assert torch.allclose(scheduler.alphas_cumprod.double(), ABAR, rtol=2e-6, atol=0)   # the mapped schedule
    eps_model = nonlinear_eps(ABAR)

    def model_output(x, i):                                                 # what the scheduler is told it gets
        t = torch.full((x.shape[0],), int(scheduler.timesteps[i]), dtype=torch.long)
        eps = eps_model(x, t)
        if parameterization == "eps":
            return eps
        abar = ABAR[t].view(-1, 1, 1, 1)
        return (eps - (1 - abar).sqrt() * x) / abar.sqrt()                  # v, as diffc's ddpm_v objective defines it

    x = start_noise(16, (1, 4, 4)).double()
    seeds = range(16)
    theirs = schedulers.run_scheduler(scheduler, model_output, x, 20, SeededNoise(seeds).generators, eta=eta,
                                      use_clipped_model_output=clip)
    timesteps = scheduler.timesteps.flip(0)                                 # 49, 99, ..., 999 ("trailing")
    assert timesteps.tolist() == list(range(49, 1000, 50))
    ours = ddpm.ddim(lambda x_, t: (eps_model(x_, t), None), x, ABAR, timesteps, SeededNoise(seeds), eta, clip)
    assert theirs.dtype == torch.float64
    assert (theirs - ours).abs().max() < 1e-6
    unclipped = ddpm.ddim(lambda x_, t: (eps_model(x_, t), None), x, ABAR, timesteps, SeededNoise(seeds), eta)
    assert clip == bool((unclipped - ours).abs().max() > 1e-3)          # the clip did act on this model
    assert (theirs - x).abs().max() > 0.1                                   # it did sample


def test_clipping_equals_dpm_solver_thresholding_at_one():
    """The bridge clips x0 and re-derives eps; DPM-Solver++'s own thresholding with sample_max_value = 1 clips its
    x0 to [-1, 1]: the same sampler, computed two ways."""
    eps_model = nonlinear_eps(ABAR)
    x = start_noise(16, (1, 4, 4)).double()
    ours = schedulers.sample_ddpm("dpmpp-2m", eps_model, x, 10, ABAR, clip=True)
    config = schedulers.ddpm_scheduler_config(ABAR, "eps")
    scheduler = diffusers.DPMSolverMultistepScheduler(**config, thresholding=True, sample_max_value=1.0)
    theirs = schedulers.run_scheduler(scheduler, lambda x_, i: eps_model(x_, torch.full(
        (x_.shape[0],), int(scheduler.timesteps[i]), dtype=torch.long)), x, 10)
    assert (ours - theirs).abs().max() < 1e-5
    assert (ours - schedulers.sample_ddpm("dpmpp-2m", eps_model, x, 10, ABAR)).abs().max() > 1e-3


def exact_ddpm_transport(x):
    """The probability-flow ODE from t = T-1 to clean data on N(MU, S^2): a whitening map, known exactly."""
    abar = ABAR[-1].item()
    return MU + S * (x - math.sqrt(abar) * MU) / math.sqrt(abar * S ** 2 + 1 - abar)


@pytest.mark.parametrize("sampler", ["dpmpp-2m", "unipc"])
def test_multistep_solvers_beat_ddim_on_the_exact_ode(sampler):
    bundle = ToyBundle("timestep", "ddpm")
    seeds = range(256)
    target = exact_ddpm_transport(SeededNoise(seeds).randn((1, 4, 4)))
    error = {}
    for name, steps in [("ddim", 10), (sampler, 10), (sampler, 50)]:
        out = sample_images(bundle, seeds, SamplerConfig(name, steps=steps, clip_denoised=False))   # the exact ODE
        error[name, steps] = (out - target).abs().mean().item()
    assert error[sampler, 10] < 0.8 * error["ddim", 10]
    assert error[sampler, 50] < 0.01


@pytest.mark.parametrize("sampler", ["dpmpp-2m", "unipc", "euler-a"])
def test_v_prediction_samples_as_eps_prediction(sampler):
    noise = NoiseInput("t", "timestep", steps=1000)
    eps_bundle = Bundle("ddpm_eps", noise, None)
    table = eps_bundle.objective.alphas_cumprod
    eps_bundle.module.fn = lambda x, t: exact_eps(x, t)[0]

    def v_output(x, t):
        abar = table[t.long()].view(-1, 1, 1, 1).float()
        return (exact_eps(x, t)[0] - (1 - abar).sqrt() * x) / abar.sqrt()
    v_bundle = Bundle("ddpm_v", noise, v_output)
    config = SamplerConfig(sampler, steps=10)
    a, b = sample_images(eps_bundle, range(8), config), sample_images(v_bundle, range(8), config)
    assert torch.allclose(a, b, atol=1e-4)


def exact_velocity(x, t):
    t = t.view(-1, 1, 1, 1)
    var = t ** 2 * S ** 2 + (1 - t) ** 2
    return MU + t * S ** 2 * (x - t * MU) / var - (1 - t) * (x - t * MU) / var


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("sampler", ["dpmpp-2m", "unipc"])
def test_flow_models_reach_the_exact_transport_map(sampler, shift):
    """diffusers' flow mode starts just short of pure noise (its first sigma, t0 < 1e-3); from there the ODE's
    answer is x1 = MU + S (x - t0 MU) / sqrt(t0^2 S^2 + (1 - t0)^2). A wrong sign, time or shift is off by ~0.5."""
    bundle = Bundle("flow", NoiseInput("t", "time"), exact_velocity, shift=shift)
    seeds = range(256)
    seen = []

    def recording(x_, t):
        seen.append(t[0].item())
        return exact_velocity(x_, t)
    bundle.module.fn = recording
    out = sample_images(bundle, seeds, SamplerConfig(sampler, steps=20))
    t0 = seen[0]
    assert 0 < t0 < 1e-3 and seen == sorted(seen)
    x = SeededNoise(seeds).randn((1, 4, 4))
    target = MU + S * (x - t0 * MU) / math.sqrt(t0 ** 2 * S ** 2 + (1 - t0) ** 2)
    assert (out - target).abs().mean() < 0.02


@pytest.mark.parametrize("kind,family", [("timestep", "ddpm"), ("time", "flow")])
def test_euler_ancestral_samples_the_data_distribution(kind, family):
    out = sample_images(ToyBundle(kind, family), range(256), SamplerConfig("euler-a", steps=200, clip_denoised=False))
    assert abs(out.mean().item() - MU) < 0.02 and abs(out.std().item() - S) < 0.03


@pytest.mark.parametrize("kind,family,sampler", [("timestep", "ddpm", "euler-a"), ("time", "flow", "euler-a"),
                                                 ("timestep", "ddpm", "dpmpp-2m")])
def test_seeds_are_per_sample_whatever_the_batch_size(kind, family, sampler):
    bundle = ToyBundle(kind, family, conditional=True)
    config = SamplerConfig(sampler, steps=8)
    a = torch.cat([img for _, img in generate(bundle, 7, seed=5, batch_size=3, config=config, progress=False)])
    b = torch.cat([img for _, img in generate(bundle, 7, seed=5, batch_size=7, config=config, progress=False)])
    assert torch.equal(a, b)
    c = torch.cat([img for _, img in generate(bundle, 7, seed=6, batch_size=7, config=config, progress=False)])
    assert torch.equal(a[1:], c[:-1]) and not torch.equal(a, c)


def test_diffusers_samplers_refuse_edm_models():
    with pytest.raises(UserError, match="'dpmpp-2m' is for ddpm and flow models; this model's objective is edm"):
        SamplerConfig("dpmpp-2m").resolve("edm")
    assert SamplerConfig("unipc").resolve("flow").steps == 20
    with pytest.raises(UserError, match="did you mean 'dpmpp-2m'"):
        SamplerConfig("dpmpp2m").resolve("ddpm")


def test_cli_sample_with_dpmpp_2m(tmp_path, monkeypatch, capsys):
    bundle = ToyBundle("timestep", "ddpm", conditional=True)
    monkeypatch.setattr("diffc.sampling.generate.load_bundle", lambda *args, **kwargs: bundle)
    checkpoint = tmp_path / "ckpt.pt"
    checkpoint.write_bytes(b"")
    out = tmp_path / "samples"
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", str(checkpoint), "--n", "3", "--out", str(out), "--sampler", "dpmpp-2m", "--steps", "20"])
    assert exit_info.value.code == 0, capsys.readouterr()
    provenance = json.loads((out / "samples.json").read_text())
    assert provenance["sampler"]["sampler"] == "dpmpp-2m" and provenance["sampler"]["steps"] == 20
    with np.load(out / "samples.npz") as data:
        direct = sample_images(bundle, range(3), SamplerConfig("dpmpp-2m", steps=20))
        expected = ((direct + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        assert np.array_equal(data["arr_0"], expected)
