"""Sampling defaults equal the reference code's (DiT/ADM `diffusion/`, EDM2 `generate_images.py`): respacing,
fixed-large variance, x0 clipping for pixel models, guidance of the sample channels only, guidance by a second
network, and the warning for a condition that was never dropped in training."""
import math

import pytest
import torch

from diffc.cli import main
from diffc.interface import Condition, ModelInterface, NoiseInput
from diffc.sampling import ddpm, edm
from diffc.sampling.generate import SamplerConfig, sample_images
from diffc.sampling.guidance import GuidedModel, untrained_null_conditions
from diffc.sampling.noise import SeededNoise
from diffc.schedules import alphas_cumprod, ddpm_betas, edm_precond
from diffc.training.objectives import build_objective

ABAR = alphas_cumprod("linear", 1000)
BETAS = ddpm_betas("linear", 1000)
LABEL = Condition("y", "label", (10,), dropout=0.1)


def dit_space_timesteps(num_timesteps, count):
    """Transcription of the one-section path of DiT's diffusion/respace.py `space_timesteps`."""
    frac_stride = 1 if count <= 1 else (num_timesteps - 1) / (count - 1)
    cur_idx, taken = 0.0, []
    for _ in range(count):
        taken.append(round(cur_idx))
        cur_idx += frac_stride
    return sorted(set(taken))


def test_respacing_equals_dit_space_timesteps_for_every_step_count():
    for n in range(2, 1001):
        assert ddpm.respaced_timesteps(1000, n).tolist() == dit_space_timesteps(1000, n), n
    assert ddpm.respaced_timesteps(1000, 1).tolist() == [999]     # documented: one step starts from pure noise
    assert ddpm.respaced_timesteps(1000, 250).tolist()[:3] == [0, 4, 8]


def test_fixed_large_variances_equal_beta_t_and_small_the_posterior():
    steps = torch.arange(1000)
    large = ddpm.fixed_variances(ABAR, steps, "large")
    small = ddpm.fixed_variances(ABAR, steps, "small")
    posterior = BETAS * (1 - torch.cat([torch.ones(1, dtype=torch.float64), ABAR[:-1]])) / (1 - ABAR)
    assert torch.allclose(large[1:], BETAS[1:], rtol=1e-12, atol=0) and large[0].item() == pytest.approx(posterior[1].item(), rel=1e-12)
    assert torch.allclose(small, posterior, rtol=1e-9, atol=0)
    respaced = ddpm.respaced_timesteps(1000, 50)
    abar = ABAR[respaced]
    beta = 1 - abar[1:] / abar[:-1]                               # betas of the respaced chain (ADM respace.py)
    assert torch.allclose(ddpm.fixed_variances(ABAR, respaced)[1:], beta, rtol=1e-12, atol=0)


@pytest.mark.parametrize("variance", ["large", "small"])
def test_ancestral_step_draws_with_the_chosen_fixed_variance(variance):
    """eps = 0, two steps [0, 999]: the state after the noisy step has exactly the chosen variance."""
    steps = ddpm.respaced_timesteps(1000, 2)
    seen = []

    def capture(x, t):
        seen.append(x.clone())
        return torch.zeros_like(x), None

    ddpm.ddpm_ancestral(capture, torch.zeros(4000, 1, 1, 1), ABAR, steps, SeededNoise(range(4000)), variance=variance)
    expected = ddpm.fixed_variances(ABAR, steps, variance)[1].item()
    assert seen[1].var().item() == pytest.approx(expected, rel=0.08)
    assert expected == pytest.approx(1 - ABAR[999].item() / ABAR[0].item() if variance == "large" else
                                     (1 - ABAR[999] / ABAR[0]).item() * (1 - ABAR[0].item()) / (1 - ABAR[999].item()))


class Bundle:
    def __init__(self, kind, noise, forward, out_channels=1, conditions=(), recipe=None, **cfg):
        self.interface = ModelInterface((1, 4, 4), out_channels, noise, conditions)
        self.objective = build_objective(dict(kind=kind, **cfg), self.interface)
        self.module = Model(self.interface, forward)
        self.recipe = recipe or {}


class Model(torch.nn.Module):
    def __init__(self, interface, forward):
        super().__init__()
        self.interface, self.fn = interface, forward

    def forward(self, x, level, cond):
        return self.fn(x, level, cond), {}


def _labelled(x, cond):
    """+1 per sample whose label is not the null (index 10): the conditional and unconditional outputs differ."""
    label = cond.get("y", torch.full((x.shape[0],), 10))
    return (label != 10).to(x.dtype).view(-1, 1, 1, 1)


def test_guidance_on_a_learned_variance_model_leaves_variance_channels_conditional():
    interface = ModelInterface((2, 4, 4), 4, NoiseInput("t", "timestep", steps=1000), (LABEL,))
    module = Model(interface, lambda x, t, cond: torch.cat([x + 2 * _labelled(x, cond)] * 2, 1) * 0.5)
    x, t, cond = torch.randn(3, 2, 4, 4), torch.full((3,), 10), {"y": torch.tensor([1, 2, 3])}
    out_c, out_u = module(x, t, cond)[0], module(x, t, {})[0]
    guided, _ = GuidedModel(module, 4.0, channels=2)(x, t, cond)
    assert torch.equal(guided[:, 2:], out_c[:, 2:])
    assert torch.allclose(guided[:, :2], out_u[:, :2] + 4.0 * (out_c[:, :2] - out_u[:, :2]))
    dit, _ = GuidedModel(module, 4.0, channels=3)(x, t, cond)     # DiT's forward_with_cfg: channels 0-2 only
    assert torch.equal(dit[:, 3:], out_c[:, 3:])
    assert torch.allclose(dit[:, :3], out_u[:, :3] + 4.0 * (out_c[:, :3] - out_u[:, :3]))


def test_sample_images_guides_only_the_sample_channels_by_default(monkeypatch):
    """What reaches the DDPM sampler as the variance output is the conditional branch's, unguided."""
    noise = NoiseInput("t", "timestep", steps=1000)
    bundle = Bundle("ddpm_eps", noise, lambda x, t, cond: torch.cat([0 * x, _labelled(x, cond) - 0.5 + 0 * x], 1),
                    out_channels=2, conditions=(LABEL,))
    variances = []

    def recording(predict, x, *args, **kwargs):
        variances.append(predict(x, torch.full((x.shape[0],), 999))[1])
        return x
    monkeypatch.setattr(ddpm, "ddpm_ancestral", recording)
    sample_images(bundle, range(3), SamplerConfig("ddpm", steps=4, guidance=4.0), labels=1)
    assert torch.equal(variances[0], torch.full((3, 1, 4, 4), 0.5))      # conditional: 1 - 0.5 (guided: 3.5)


def _x0_out_of_range(x, t, cond):
    return torch.zeros_like(x) - 2.0           # eps = -2: predicted x0 far above 1 near the end of the chain


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_pixel_models_clip_x0_and_latent_models_do_not(sampler):
    noise = NoiseInput("t", "timestep", steps=1000)
    pixel = Bundle("ddpm_eps", noise, _x0_out_of_range)
    latent = Bundle("ddpm_eps", noise, _x0_out_of_range, recipe={"data": {"name": "latents"}})
    config = SamplerConfig(sampler, steps=10)
    clipped, raw = sample_images(pixel, range(4), config), sample_images(latent, range(4), config)
    assert clipped.max() <= 1.0 and clipped.min() >= -1.0 and raw.max() > 1.5
    forced = sample_images(latent, range(4), SamplerConfig(sampler, steps=10, clip_denoised=True))
    assert torch.equal(forced, clipped)
    pixel.decoder = object()                   # a model decoded by an autoencoder (training previews) is latent
    assert torch.equal(sample_images(pixel, range(4), config), raw)


def test_ddim_clip_rederives_eps_from_the_clipped_x0():
    """One DDIM step by hand (ADM ddim_sample): x0 clipped, eps = (x - sqrt(abar) x0) / sqrt(1 - abar)."""
    steps = torch.tensor([0, 600])
    x = torch.full((1, 1, 1, 1), 2.0)
    eps = torch.full_like(x, -1.0)
    seen = []

    def predict(x_, t):
        seen.append(x_.clone())
        return eps, None
    ddpm.ddim(predict, x, ABAR, steps, clip=True)
    a, a_prev = ABAR[600].item(), ABAR[0].item()
    x0 = min((2.0 + math.sqrt(1 - a)) / math.sqrt(a), 1.0)
    eps_clipped = (2.0 - math.sqrt(a) * x0) / math.sqrt(1 - a)
    assert seen[1].item() == pytest.approx(math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps_clipped, rel=1e-6)


def _edm_raw(scale):
    return lambda x, sigma, cond: scale * torch.tanh(x) + 0.1 * _labelled(x, cond)


def test_guidance_by_a_second_network_equals_the_edm2_formula():
    """D = D_g + w (D_1 - D_g), each network through its own preconditioning (here different sigma_data)."""
    main_bundle = Bundle("edm2", NoiseInput("sigma", "sigma"), _edm_raw(1.0), conditions=(LABEL,), sigma_data=0.5)
    guide = Bundle("edm2", NoiseInput("sigma", "sigma"), _edm_raw(0.7), sigma_data=0.8)   # unconditional gnet
    main_bundle.guide = guide
    out = sample_images(main_bundle, range(3), SamplerConfig("heun", steps=6, guidance=2.5), labels=4)

    def denoiser(raw, sigma_data, cond):
        def d(x, sigma):
            c_skip, c_out, c_in, c_noise = edm_precond(sigma.view(-1, 1, 1, 1), sigma_data)
            return c_skip * x + c_out * raw(c_in * x, c_noise, cond)
        return d
    cond = {"y": torch.full((3,), 4)}
    d1, dg = denoiser(_edm_raw(1.0), 0.5, cond), denoiser(_edm_raw(0.7), 0.8, {})
    z = SeededNoise(range(3)).randn((1, 4, 4))
    expected = edm.edm_sample(lambda x, s: dg(x, s) + 2.5 * (d1(x, s) - dg(x, s)), z, edm.edm_sigmas(6))
    assert torch.allclose(out, expected, atol=1e-5)
    plain = sample_images(Bundle("edm2", NoiseInput("sigma", "sigma"), _edm_raw(1.0), conditions=(LABEL,)),
                          range(3), SamplerConfig("heun", steps=6), labels=4)
    assert not torch.allclose(out, plain, atol=1e-3)


def test_guide_network_of_another_family_is_refused():
    main_bundle = Bundle("edm2", NoiseInput("sigma", "sigma"), _edm_raw(1.0))
    main_bundle.guide = Bundle("flow", NoiseInput("t", "time"), _edm_raw(1.0))
    with pytest.raises(Exception, match="--guide: the guiding network is a flow model"):
        sample_images(main_bundle, range(2), SamplerConfig("heun", steps=2, guidance=2.0))


def test_warning_for_guiding_a_condition_trained_with_dropout_0():
    never_dropped = Condition("y", "label", (10,), dropout=0.0)
    bundle = Bundle("ddpm_eps", NoiseInput("t", "timestep", steps=1000), _x0_out_of_range, conditions=(never_dropped,))
    [warning] = untrained_null_conditions(bundle, 2.0)
    assert "condition 'y'" in warning and "dropout 0" in warning
    assert untrained_null_conditions(bundle, 1.0) == []
    dropped = Bundle("ddpm_eps", NoiseInput("t", "timestep", steps=1000), _x0_out_of_range, conditions=(LABEL,))
    assert untrained_null_conditions(dropped, 2.0) == []
    dropped.recipe = {"conditioning": {"label_dropout": 0.0}}       # the recipe overrode the spec's @drop
    assert len(untrained_null_conditions(dropped, 2.0)) == 1


def test_cli_sample_prints_the_dropout_0_warning(tmp_path, monkeypatch, capsys):
    never_dropped = Condition("y", "label", (10,), dropout=0.0)
    bundle = Bundle("ddpm_eps", NoiseInput("t", "timestep", steps=1000), _x0_out_of_range, conditions=(never_dropped,))
    monkeypatch.setattr("diffc.sampling.generate.load_bundle", lambda path, ema=None, device="cpu", vae=None: bundle)
    (tmp_path / "ckpt.pt").write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", str(tmp_path / "ckpt.pt"), "--n", "2", "--steps", "2", "--guidance", "3",
              "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 0
    assert "warning: guidance drops condition 'y', which was trained with dropout 0" in capsys.readouterr().err
