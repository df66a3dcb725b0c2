"""Samplers against analytic toy models: Gaussian data N(mu, s^2) whose exact eps / denoiser / velocity is known."""
import math

import pytest
import torch

from diffc.interface import Condition, ModelInterface, NoiseInput
from diffc.sampling import ddpm, edm, flow
from diffc.sampling.generate import SamplerConfig, generate, sample_images
from diffc.sampling.noise import SeededNoise
from diffc.schedules import alphas_cumprod

MU, S = 0.3, 0.5
ABAR = alphas_cumprod("linear", 1000)


def exact_eps(x, t):
    """E[eps | x_t] for x_0 ~ N(MU, S^2), x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps."""
    abar = ABAR[t.long()].float().view(-1, *[1] * (x.dim() - 1))
    return (1 - abar).sqrt() * (x - abar.sqrt() * MU) / (abar * S ** 2 + 1 - abar), None


def exact_denoiser(x, sigma):
    sigma = sigma.view(-1, *[1] * (x.dim() - 1))
    return MU + S ** 2 / (S ** 2 + sigma ** 2) * (x - MU)


def exact_velocity(x, t):
    """E[x1 - x0 | x_t] for x_t = t x1 + (1 - t) x0, x1 ~ N(MU, S^2), x0 ~ N(0, 1)."""
    t = t.view(-1, *[1] * (x.dim() - 1))
    var = t ** 2 * S ** 2 + (1 - t) ** 2
    x1 = MU + t * S ** 2 * (x - t * MU) / var
    x0 = (1 - t) * (x - t * MU) / var
    return x1 - x0


def start_noise(n=256, shape=(1, 4, 4), seed=0):
    return SeededNoise(range(seed, seed + n)).randn(shape)


def test_respacing_keeps_original_indices_and_model_sees_them():
    assert ddpm.respaced_timesteps(1000, 4).tolist() == [0, 333, 666, 999]
    seen = []

    def recording(x, t):
        seen.append(t.unique().tolist())
        return exact_eps(x, t)

    steps = ddpm.respaced_timesteps(1000, 10)
    ddpm.ddpm_ancestral(recording, start_noise(4), ABAR, steps, SeededNoise(range(4)))
    assert [s[0] for s in seen] == steps.flip(0).tolist()
    assert all(len(s) == 1 for s in seen)


def test_respaced_alphas_chain():
    steps = torch.tensor([0, 499, 999])
    abar, abar_prev = ddpm.respaced_alphas(ABAR, steps)
    assert torch.equal(abar, ABAR[steps])
    assert abar_prev.tolist() == [1.0, ABAR[0].item(), ABAR[499].item()]


def chain_std(steps, eta=None, fixed="small"):
    """Std after the discrete chain on Gaussian data (eta None: ancestral with fixed variance beta~_t ("small")
    or beta_t ("large"), else DDIM(eta)). With the exact eps
    every step is affine, x <- a x + b + sqrt(v) z, so Var <- a^2 Var + v: computed here without the sampler code."""
    abar = ABAR[steps].tolist()
    variance = 1.0
    for k in reversed(range(len(abar))):
        prev = abar[k - 1] if k else 1.0
        beta = 1 - abar[k] / prev
        slope_eps = math.sqrt(1 - abar[k]) / (abar[k] * S ** 2 + 1 - abar[k])
        slope_x0 = (1 - math.sqrt(1 - abar[k]) * slope_eps) / math.sqrt(abar[k])
        if eta is None:
            a = beta * math.sqrt(prev) / (1 - abar[k]) * slope_x0 + (1 - prev) * math.sqrt(1 - beta) / (1 - abar[k])
            v = (beta * (1 - prev) / (1 - abar[k]) if fixed == "small" else beta) if k else 0.0
        else:
            v = eta ** 2 * (1 - prev) / (1 - abar[k]) * (1 - abar[k] / prev)
            a = math.sqrt(prev) * slope_x0 + math.sqrt(1 - prev - v) * slope_eps
        variance = a * a * variance + v
    return math.sqrt(variance)


@pytest.mark.parametrize("variance", ["small", "large"])
def test_ancestral_matches_discrete_chain_variance(variance):
    n = 2000
    steps = ddpm.respaced_timesteps(1000, 50)
    out = ddpm.ddpm_ancestral(exact_eps, start_noise(n, (1, 2, 2)), ABAR, steps, SeededNoise(range(10_000, 10_000 + n)),
                              variance=variance)
    assert out.mean().item() == pytest.approx(MU, abs=0.03)
    assert out.std().item() == pytest.approx(chain_std(steps, fixed=variance), abs=0.02)
    assert chain_std(steps) < chain_std(ddpm.respaced_timesteps(1000, 1000)) < S + 0.01


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_matches_discrete_chain(eta):
    n = 2000
    x = start_noise(n, (1, 2, 2))
    noise = SeededNoise(range(10_000, 10_000 + n))
    steps = ddpm.respaced_timesteps(1000, 50)
    out = ddpm.ddim(exact_eps, x, ABAR, steps, noise, eta=eta)
    assert out.mean().item() == pytest.approx(MU, abs=0.03)
    assert out.std().item() == pytest.approx(chain_std(steps, eta), abs=0.02)
    assert chain_std(steps, 1.0) == pytest.approx(chain_std(steps), rel=1e-9)   # DDIM(eta=1) is ancestral DDPM


def test_ddim_eta0_deterministic_and_invertible():
    x_T = start_noise(16)
    steps = ddpm.respaced_timesteps(1000, 200)
    a = ddpm.ddim(exact_eps, x_T, ABAR, steps)
    b = ddpm.ddim(exact_eps, x_T.clone(), ABAR, steps)
    assert torch.equal(a, b)
    error = (ddpm.ddim_invert(exact_eps, a, ABAR, steps) - x_T).abs().max().item()
    assert error < 0.1 < (a - x_T).abs().max().item()
    finer = ddpm.respaced_timesteps(1000, 1000)
    finer_error = (ddpm.ddim_invert(exact_eps, ddpm.ddim(exact_eps, x_T, ABAR, finer), ABAR, finer) - x_T).abs().max()
    assert finer_error.item() < 0.3 * error    # first order: the round trip converges as the steps are refined


def test_learned_variance_bounds():
    """Learned-range variance output -1 / +1 gives posterior / beta variances: check spread of one step."""
    steps = ddpm.respaced_timesteps(1000, 2)   # [0, 999]: one noisy step, then the final mean step
    x = torch.zeros(4000, 1, 1, 1)
    abar, abar_prev = ddpm.respaced_alphas(ABAR, steps)
    beta = (1 - abar[1] / abar_prev[1]).item()
    posterior = beta * (1 - abar_prev[1].item()) / (1 - abar[1].item())
    for value, variance in [(-1.0, posterior), (1.0, beta)]:
        seen = []

        def capture(x_, t, value=value, seen=seen):
            """eps = 0 and a constant variance output; records the input of each step."""
            seen.append(x_.clone())
            return torch.zeros_like(x_), torch.full_like(x_, value)

        ddpm.ddpm_ancestral(capture, x, ABAR, steps, SeededNoise(range(4000)), learned_variance=True)
        assert seen[1].var().item() == pytest.approx(variance, rel=0.08)


def test_edm_sigmas_equal_rho_formula():
    sigmas = edm.edm_sigmas(3, 0.002, 80.0, 7.0)
    middle = ((80.0 ** (1 / 7) + 0.002 ** (1 / 7)) / 2) ** 7
    assert sigmas.tolist() == pytest.approx([80.0, middle, 0.002, 0.0], rel=1e-12)
    s = edm.edm_sigmas(32)
    i = 17
    assert s[i].item() == pytest.approx((80 ** (1 / 7) + i / 31 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7, rel=1e-12)


def test_heun_passes_each_evaluation_its_own_noise_level():
    """A multi-stage model switches decoder per evaluation from the level it is given: record the levels."""
    sigmas = edm.edm_sigmas(4)
    levels = []

    def recording(x, sigma):
        levels.append(sigma[0].item())
        assert torch.all(sigma == sigma[0])
        return exact_denoiser(x, sigma)

    edm.edm_sample(recording, start_noise(2), sigmas)
    s = sigmas.tolist()
    assert levels == pytest.approx([s[0], s[1], s[1], s[2], s[2], s[3], s[3]], rel=1e-6)   # NFE = 2N - 1
    levels.clear()
    edm.edm_sample(recording, start_noise(2), sigmas, heun=False)
    assert levels == pytest.approx(s[:4], rel=1e-6)


def test_heun_matches_exact_probability_flow_solution():
    z = start_noise(64)
    exact = MU + S / math.sqrt(S ** 2 + 80.0 ** 2) * (80.0 * z - MU)
    errors = [(edm.edm_sample(exact_denoiser, z, edm.edm_sigmas(n)) - exact).abs().max().item() for n in (32, 64)]
    assert errors[1] < 1e-2
    assert errors[1] < errors[0] / 3          # second order: halving the step divides the error by ~4


@pytest.mark.parametrize("method,tol", [("euler", 5e-2), ("heun", 1e-3), ("dopri5", 5e-3)])
def test_flow_ode_matches_transport_map_and_inverts(method, tol):
    z = start_noise(32)
    out = flow.flow_ode(exact_velocity, z, steps=100, method=method)
    assert (out - (MU + S * z)).abs().max().item() < tol
    back = flow.flow_ode(exact_velocity, out, steps=100, method=method, t0=1.0, t1=0.0)
    assert (back - z).abs().max().item() < 2 * tol
    assert torch.equal(out, flow.flow_ode(exact_velocity, z.clone(), steps=100, method=method))


def test_flow_sde_reaches_data_distribution():
    n = 2000
    out = flow.flow_sde(exact_velocity, start_noise(n, (1, 2, 2)), SeededNoise(range(5000, 5000 + n)), steps=100)
    assert out.mean().item() == pytest.approx(MU, abs=0.03)
    assert out.std().item() == pytest.approx(S, abs=0.04)


# ---- end to end through generate(): toy models with the compiled-model contract and toy objectives ----

class ToyModel(torch.nn.Module):
    """Raw output = exact prediction of the family, plus 0.1 * label so that labels matter."""

    def __init__(self, kind, conditional=False):
        super().__init__()
        conditions = (Condition("label", "label", (3,)),) if conditional else ()
        noise = NoiseInput("t", kind, steps=1000 if kind == "timestep" else None)
        self.interface = ModelInterface((1, 4, 4), 1, noise, conditions)
        exact = {"timestep": lambda x, t: exact_eps(x, t)[0], "sigma": exact_denoiser, "time": exact_velocity}
        self.exact = exact[kind]

    def forward(self, x, noise_level, cond):
        out = self.exact(x, noise_level)
        if "label" in cond:
            out = out + 0.1 * (cond["label"] % 3).float().view(-1, 1, 1, 1)
        return out, {}


class ToyObjective:
    def __init__(self, family):
        self.family = family
        self.steps, self.alphas_cumprod, self.learned_variance = 1000, ABAR, False

    def eps_from_output(self, out, x_t, t):
        return out

    def denoise(self, module, x, sigma, cond):
        return module(x, sigma, cond)[0]

    def velocity(self, module, x, t, cond):
        return module(x, t, cond)[0]


class ToyBundle:
    def __init__(self, kind, family, conditional=False):
        self.module = ToyModel(kind, conditional)
        self.interface = self.module.interface
        self.objective = ToyObjective(family)


@pytest.mark.parametrize("kind,family,config", [
    ("timestep", "ddpm", SamplerConfig(steps=20)),
    ("timestep", "ddpm", SamplerConfig("ddim", steps=10, eta=0.5)),
    ("sigma", "edm", SamplerConfig(steps=8, churn=5.0)),
    ("time", "flow", SamplerConfig("sde", steps=20)),
])
def test_fixed_seeds_give_identical_images_whatever_the_batch_size(kind, family, config):
    bundle = ToyBundle(kind, family, conditional=True)
    a = torch.cat([img for _, img in generate(bundle, 7, seed=5, batch_size=3, config=config, progress=False)])
    b = torch.cat([img for _, img in generate(bundle, 7, seed=5, batch_size=7, config=config, progress=False)])
    assert a.dtype == torch.uint8 and a.shape == (7, 1, 4, 4)
    assert torch.equal(a, b)
    c = torch.cat([img for _, img in generate(bundle, 7, seed=6, batch_size=7, config=config, progress=False)])
    assert torch.equal(a[1:], c[:-1]) and not torch.equal(a, c)


def test_generate_guided_flow_matches_hand_guidance():
    """Guided velocity = v_u + w (v_c - v_u) = exact + 0.1 * w * label; compare against sampling that directly."""
    bundle = ToyBundle("time", "flow", conditional=True)
    labels = 2
    out = sample_images(bundle, range(4), SamplerConfig(steps=10, guidance=3.0), labels=labels)
    z = SeededNoise(range(4)).randn((1, 4, 4))
    hand = flow.flow_ode(lambda x, t: exact_velocity(x, t) + 0.1 * 3.0 * labels, z, steps=10, method="heun")
    assert torch.allclose(out, hand, atol=1e-5)


def test_sampler_family_mismatch_is_a_user_error():
    from diffc.errors import UserError
    with pytest.raises(UserError, match="'heun' is for edm models; this model's objective is ddpm"):
        SamplerConfig("heun").resolve("ddpm")
    assert SamplerConfig("ddpm").resolve("ddpm", max_steps=100).steps == 100
    with pytest.raises(UserError, match=r"--steps must be in 1..100, got 101"):
        SamplerConfig("ddim", steps=101).resolve("ddpm", max_steps=100)
    with pytest.raises(UserError, match="did you mean 'heun'"):
        SamplerConfig("hune").resolve("edm")


def test_flow_grid_follows_the_resolution_shift():
    seen = []

    def recording(x, t):
        seen.append(t[0].item())
        return exact_velocity(x, t)

    flow.flow_ode(recording, start_noise(2), steps=4, method="euler", shift=3.0)
    u = 1 - torch.linspace(0, 1, 5, dtype=torch.float64)[:4]
    assert seen == pytest.approx((1 - 3 * u / (1 + 2 * u)).tolist(), abs=1e-6)   # t' = 1 - r u / (1 + (r-1) u)


def test_label_errors():
    from diffc.errors import UserError
    with pytest.raises(UserError, match="out of range 0..2"):
        sample_images(ToyBundle("time", "flow", conditional=True), range(2), SamplerConfig(steps=2), labels=3)
    with pytest.raises(UserError, match="no label condition"):
        sample_images(ToyBundle("time", "flow"), range(2), SamplerConfig(steps=2), labels=1)
