"""EDM2 specs against the reference network: exact parameter counts, the xs state_dict layout key for key,
unit magnitudes at init, the log-variance tap, and forced weight normalisation across a training step."""
import math
from pathlib import Path

import pytest
import torch

from diffc.blocks.nn.mp import EDM2Block, MPWeight
from diffc.compiler import build_model

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
REFERENCE = ROOT / "tests" / "data"   # copies of shared/reference layouts, so the suite runs without shared/

# param_counts.md (sum of module.parameters() numel of the reference Precond network)
PARAM_COUNTS = {
    "edm2_img512_xxs": 31_309_029, "edm2_img512_xs": 124_713_253, "edm2_img512_s": 280_212_837,
    "edm2_img512_m": 497_807_781, "edm2_img512_l": 777_498_085, "edm2_img512_xl": 1_119_283_749,
    "edm2_img512_xxl": 1_523_164_773, "edm2_img64_xs": 124_710_949, "edm2_img64_s": 280_209_381,
    "edm2_img64_m": 497_803_173, "edm2_img64_l": 777_492_325, "edm2_img64_xl": 1_119_276_837,
}


def reference_layout(path):
    """TSV key -> shape; an empty shape column is a 0-d scalar."""
    layout = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, shape = line.split("\t")
        layout[key] = tuple(int(d) for d in shape.split("x")) if shape else ()
    return layout


@pytest.mark.parametrize("preset", sorted(PARAM_COUNTS))
def test_preset_parameter_count_matches_reference(preset):
    built = build_model(SPECS / f"{preset}.diffspec", preset, device="meta")
    assert sum(p.numel() for p in built.module.parameters()) == PARAM_COUNTS[preset]


def test_xs_state_dict_matches_reference_key_for_key():
    built = build_model(SPECS / "edm2_img512_xs.diffspec", device="meta")
    reference = reference_layout(REFERENCE / "edm2_img512_xs_state_dict.tsv")
    ours = {k: tuple(v.shape) for k, v in built.module.state_dict().items()}
    assert list(ours) == list(reference)            # same keys, in the reference's order
    assert ours == reference
    fake = {k: torch.zeros(shape, device="meta") for k, shape in reference.items()}
    result = built.module.load_state_dict(fake, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    buffers = {k for k, _ in built.module.named_buffers()}
    assert buffers == {"unet.emb_fourier.freqs", "unet.emb_fourier.phases",
                       "logvar_fourier.freqs", "logvar_fourier.phases"}   # fixed Fourier tables, not parameters


def test_interface_is_sigma_conditioned_with_labels():
    built = build_model(SPECS / "edm2_img64_s.diffspec", device="meta")
    assert built.interface.sample_shape == (3, 64, 64) and built.interface.out_channels == 3
    assert built.interface.noise.kind == "sigma"
    assert [(c.name, c.kind, c.dims) for c in built.interface.conditions] == [("y", "label", (1000,))]


def block_output_rms(module):
    """Hook every EDM2 block; returns the dict name -> RMS of its output, filled on forward."""
    out = {}
    for name, mod in module.named_modules():
        if isinstance(mod, EDM2Block):
            mod.register_forward_hook(
                lambda m, args, y, name=name: out.__setitem__(name, y.float().pow(2).mean().sqrt().item()))
    return out


def test_unit_magnitude_through_xxs_at_init():
    """Unit-normal input: every block output of EDM2-XXS (real preset, CPU) keeps RMS 1 +- 0.15 at init
    (measured 0.89 .. 1.04 with seed 0); the output is 0 because out_gain starts at 0."""
    torch.manual_seed(0)
    built = build_model(SPECS / "edm2_img512_xxs.diffspec")
    module = built.module.eval()
    magnitudes = block_output_rms(module)
    with torch.no_grad():
        pred, aux = module(torch.randn(2, 4, 64, 64), torch.tensor([0.5, 3.0]), {"y": torch.tensor([1, 7])})
    assert len(magnitudes) == 36                                # 15 encoder + 21 decoder blocks
    assert all(0.85 < v < 1.15 for v in magnitudes.values()), magnitudes
    assert pred.shape == (2, 4, 64, 64) and pred.abs().max().item() == 0
    assert aux["logvar"].shape == (2,)


def tiny():
    torch.manual_seed(0)
    return build_model(SPECS / "edm2_tiny.diffspec")


def test_tiny_logvar_tap_is_the_fourier_head_of_c_noise():
    built = tiny()
    module = built.module.eval()
    sigma = torch.tensor([0.01, 0.5, 20.0])
    with torch.no_grad():
        pred, aux = module(torch.randn(3, 1, 16, 16), sigma, {"y": torch.tensor([0, 9, 10])})
        fourier = module.logvar_fourier(torch.log(sigma) / 4)
        expected = module.logvar_linear(fourier).reshape(3)
    assert pred.shape == (3, 1, 16, 16)
    torch.testing.assert_close(aux["logvar"], expected)


def row_norm_error(module):
    """Largest relative deviation of a stored weight row norm from sqrt(fan_in) over all MP layers."""
    worst = 0.0
    for mod in module.modules():
        if isinstance(mod, MPWeight):
            w = mod.weight.detach().flatten(1)
            worst = max(worst, (w.norm(dim=1) / math.sqrt(w.shape[1]) - 1).abs().max().item())
    return worst


def test_stored_weights_are_renormalised_after_a_training_step():
    built = tiny()
    module = built.module.train()
    with torch.no_grad():                     # non-zero gains so every weight receives a gradient
        for name, p in module.named_parameters():
            if p.ndim == 0:
                p.fill_(0.5)
    opt = torch.optim.Adam(module.parameters(), lr=0.05, betas=(0.9, 0.99))
    x0, y = torch.randn(8, 1, 16, 16) * 0.5, torch.randint(0, 10, (8,))
    sigma = torch.exp(torch.randn(8) - 0.4)

    def step():
        c_in = (1 / (0.25 + sigma ** 2).sqrt())[:, None, None, None]
        noisy = x0 + torch.randn_like(x0) * sigma[:, None, None, None]
        pred, aux = module(c_in * noisy, sigma, {"y": y})
        loss = (pred - x0).pow(2).flatten(1).mean(1) / aux["logvar"].exp() + aux["logvar"]
        opt.zero_grad()
        loss.mean().backward()
        opt.step()

    step()
    assert row_norm_error(module) > 1e-3       # the optimiser moved the stored weights off the sphere
    module(torch.randn(2, 1, 16, 16), torch.ones(2), {"y": torch.zeros(2, dtype=torch.long)})
    assert row_norm_error(module) < 2e-4        # the next training forward put them back (EDM2 Eq. 66)
