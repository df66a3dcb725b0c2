"""Multi-stage U-Net (Zhang et al., CVPR 2024): per-sample decoder routing by sigma, mixed batches, zero gradients."""
import math
from pathlib import Path

import pytest
import torch

from diffc.compiler import build_model

SPECS = Path(__file__).resolve().parents[1] / "specs"
BOUNDARY_SIGMAS = (math.exp(1.84 / 2), math.exp(4.0 / 2))      # logsnr(-1.84), logsnr(-4.0) as EDM sigma


@pytest.fixture(scope="module")
def model():
    module = build_model(SPECS / "multistage_unet.diffspec", "MultistageDDPMpp_tiny").module
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():             # replace zero-initialised output layers so every decoder matters
        for p in module.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    return module.eval()


def decoder_batch_sizes(model, x, sigma):
    """How many samples each decoder's output conv saw in one forward."""
    seen = {}
    modules = dict(model.named_modules())
    hooks = [modules[f"decoder.{s}.out_conv"].register_forward_hook(
        lambda mod, inp, out, s=s: seen.__setitem__(s, inp[0].shape[0])) for s in range(3)]
    try:
        model(x, sigma)
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_samples_either_side_of_a_boundary_go_to_different_decoders(model):
    x = torch.randn(1, 1, 16, 16)
    for stage, boundary in enumerate(BOUNDARY_SIGMAS):
        below = decoder_batch_sizes(model, x, torch.tensor([boundary * (1 - 1e-6)]))
        above = decoder_batch_sizes(model, x, torch.tensor([boundary * (1 + 1e-6)]))
        assert below == {s: int(s == stage) for s in range(3)}
        assert above == {s: int(s == stage + 1) for s in range(3)}


def test_mixed_batch_equals_per_stage_batches(model):
    gen = torch.Generator().manual_seed(1)
    sigma = torch.tensor([0.01, 9.0, 1.0, 40.0, 2.4, 3.0, 80.0, 0.3])   # stages 0 2 0 2 0 1 2 0
    x = torch.randn(len(sigma), 1, 16, 16, generator=gen)
    with torch.no_grad():
        mixed, _ = model(x, sigma)
        assert decoder_batch_sizes(model, x, sigma) == {0: 4, 1: 1, 2: 3}
        for stage, members in enumerate(([0, 2, 4, 7], [5], [1, 3, 6])):
            alone, _ = model(x[members], sigma[members])
            torch.testing.assert_close(mixed[members], alone, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(mixed[0], model(x[:1], sigma[5:6])[0][0])   # the decoder choice matters


def test_decoders_without_samples_get_exact_zero_gradients(model):
    model.zero_grad(set_to_none=True)
    sigma = torch.tensor([0.05, 0.5, 2.0])                # stage 0 only
    pred, _ = model(torch.randn(3, 1, 16, 16), sigma)
    pred.square().mean().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    for stage in (1, 2):
        mine = {n: g for n, g in grads.items() if n.startswith(f"decoder.{stage}.")}
        assert mine and all(g is not None and torch.count_nonzero(g) == 0 for g in mine.values())
    used = [g for n, g in grads.items() if n.startswith("decoder.0.")]
    assert all(g is not None for g in used) and any(torch.count_nonzero(g) > 0 for g in used)
    encoder = [g for n, g in grads.items() if n.startswith("enc.")]
    assert any(torch.count_nonzero(g) > 0 for g in encoder)


def test_decoder_widths_follow_the_stage_widths(model):
    widths = [model.get_submodule(f"decoder.{s}.in0").in_conv.out_channels for s in range(3)]
    assert widths == [32 * 2, 16 * 2, 8 * 2]                 # stage_width * mult[-1]
    assert model.interface.noise.kind == "sigma"


def test_paper_config_compiles_with_three_decoders_and_one_encoder():
    full = build_model(SPECS / "multistage_unet.diffspec", "MultistageDDPMpp", device="meta").module
    widths = [full.get_submodule(f"decoder.{s}.in0").in_conv.out_channels for s in range(3)]
    assert widths == [384, 256, 32]                             # 192 / 128 / 16 times ch_mult 2
    assert full.get_submodule("decoder.2.in0").in_norm.num_groups == 8     # 16-wide decoder: fewer groups
    sizes = {}
    for name, p in full.named_parameters():
        part = ".".join(name.split(".")[:2]) if name.startswith("decoder.") else "shared"
        sizes[part] = sizes.get(part, 0) + p.numel()
    assert sizes["decoder.0"] > sizes["decoder.1"] > sizes["decoder.2"]     # capacity falls with noise
    assert sizes["shared"] < sizes["decoder.1"]
    assert full.interface.sample_shape == (3, 32, 32)
