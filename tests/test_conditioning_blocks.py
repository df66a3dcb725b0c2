"""Disentangled conditioning blocks (Berrada et al. 2024) against hand computations: the cosine ramp, the
null control embedding, noisy replicate padding, class tokens and the context-attending DiT block."""
import math

import pytest
import torch

from diffc.blocks.nn.conditioning import (
    ClassTokens, ConcatTokens, ControlEmbed, DiTCondBlock, TextEmbed, cosine_ramp,
)
from diffc.compiler.runtime import RunContext
from diffc.registry import REGISTRY, ShapeError


def params(name, **kwargs):
    return REGISTRY.block(name).params(**kwargs)


def context(fractions):
    fraction = torch.as_tensor(fractions, dtype=torch.float64)
    return RunContext(fraction, fraction, None)


def control_embed(k=3, width=8, **kwargs):
    torch.manual_seed(0)
    p = params("control_embed", width=width, freq_dim=8, **kwargs)
    return ControlEmbed(p, {"m": (k,)}, [(width,)])


# ---- the cosine ramp gamma(noise fraction) ------------------------------------------------------------
def test_ramp_is_one_clean_zero_at_pure_noise_and_monotone():
    start, end = torch.tensor([1.0], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64)
    fraction = torch.linspace(0, 1, 101, dtype=torch.float64)[:, None]
    gamma = cosine_ramp(fraction, start, end)[:, 0]
    assert gamma[0].item() == 1.0 and gamma[-1].item() == 0.0
    assert (gamma[1:] <= gamma[:-1]).all() and (gamma[1:-1] < gamma[:-2]).all()
    assert torch.allclose(gamma, torch.cos(math.pi * fraction[:, 0] / 2) ** 2)   # full-range default: cos^2


def test_ramp_per_group_bounds():
    start = torch.tensor([1.0, 0.5], dtype=torch.float64)
    end = torch.tensor([0.0, 0.1], dtype=torch.float64)
    gamma = cosine_ramp(torch.tensor([[1.0], [0.7], [0.3], [0.05]], dtype=torch.float64), start, end)
    assert gamma[:, 1].tolist()[:2] == [0.0, 0.0] and gamma[3, 1].item() == 1.0     # off above 0.5, on below 0.1
    assert gamma[2, 1].item() == pytest.approx(0.5)                                    # midway: (1 - cos(pi/2)) / 2
    assert gamma[0, 0].item() == 0.0 and 0 < gamma[1, 0].item() < gamma[2, 0].item() < 1


# ---- control_embed ------------------------------------------------------------------------------------
def test_nan_row_gives_exactly_the_null_embedding():
    embed = control_embed()
    m = torch.tensor([[0.1, 0.2, 1.0], [float("nan")] * 3, [0.3, float("nan"), 0.0]])
    out = embed(m, context([0.0, 0.0, 0.0]))
    assert torch.equal(out[1], embed.null[0]) and torch.equal(out[2], embed.null[0])   # any NaN drops the row
    assert not torch.equal(out[0], embed.null[0])


def test_null_embedding_is_ramped_and_summed_over_groups():
    embed = control_embed(groups=[0, 1, 1], ramp_start=[1.0, 0.5], ramp_end=[0.0, 0.0])
    nan = torch.full((3, 3), float("nan"))
    out = embed(nan, context([0.0, 0.25, 1.0]))
    gamma_0 = 0.5 * (1 - math.cos(math.pi * 0.75))   # group 0 at f = 0.25; group 1 at f = 0.25 is midway: 0.5
    assert torch.equal(out[0], embed.null[0] + embed.null[1])
    assert torch.allclose(out[1], gamma_0 * embed.null[0] + 0.5 * embed.null[1])
    assert torch.equal(out[2], torch.zeros(8))


def test_ramp_gates_the_control_embedding():
    embed = control_embed()
    a, b = torch.tensor([[0.1, 0.2, 1.0]]), torch.tensor([[0.9, 0.7, 0.0]])
    assert torch.equal(embed(a, context([1.0])), torch.zeros(1, 8))
    assert torch.equal(embed(a, context([1.0])), embed(b, context([1.0])))
    assert not torch.allclose(embed(a, context([0.2])), embed(b, context([0.2])))


def test_nan_rows_give_finite_gradients():
    embed = control_embed()
    m = torch.tensor([[0.1, 0.2, 1.0], [float("nan")] * 3])
    embed(m, context([0.1, 0.1])).sum().backward()
    grads = [p.grad for p in embed.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert embed.null.grad[0].abs().sum() > 0


def test_control_embed_shape_rules():
    with pytest.raises(ShapeError, match="'groups' has 2 entries"):
        params("control_embed", width=8, groups=[0, 0]).infer(m=(3,))
    with pytest.raises(ShapeError, match="each of the groups 0..1"):
        params("control_embed", width=8, groups=[0, 0, 0], ramp_start=[1.0, 0.5], ramp_end=[0.0, 0.0]).infer(m=(3,))
    with pytest.raises(ShapeError, match="no 'groups'"):
        params("control_embed", width=8, ramp_start=[1.0, 0.5], ramp_end=[0.0, 0.0]).infer(m=(3,))
    with pytest.raises(ValueError, match="ramp_end < ramp_start"):
        params("control_embed", width=8, ramp_start=[0.2], ramp_end=[0.4])
    with pytest.raises(ValueError, match="one value per control group"):
        params("control_embed", width=8, ramp_start=[1.0, 0.5], ramp_end=[0.0])
    assert params("control_embed", width=8).infer(m=(7,)) == (8,)


# ---- text_embed: noisy replicate padding ----------------------------------------------------------------
def text_embed(noise):
    torch.manual_seed(0)
    return TextEmbed(params("text_embed", width=6, noise=noise), {"text": (5, 4), "mask": (5,)}, [(5, 6)])


TEXT = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(1))
MASK = torch.tensor([[True, True, False, False, False],      # 2 real tokens
                     [True, True, True, True, True],         # no padding
                     [False, False, False, False, False]])   # dropped text: left as given


def test_replicate_padding_with_noise_zero_matches_hand_computation():
    embed = text_embed(noise=0.0).train()
    out = embed(TEXT, MASK)
    expected_row0 = TEXT[0, [0, 1, 0, 1, 0]]                  # positions 2, 3, 4 -> 2 % 2, 3 % 2, 4 % 2
    assert torch.allclose(out[0], embed.proj(expected_row0))
    assert torch.allclose(out[1:], embed.proj(TEXT[1:]))
    assert torch.equal(embed(TEXT), embed.proj(TEXT))       # no mask: no padding


def test_padding_noise_only_on_padded_positions_and_only_in_training():
    embed = text_embed(noise=0.5).train()
    torch.manual_seed(3)
    out = embed(TEXT, MASK)
    clean = embed.proj(TEXT[0, [0, 1, 0, 1, 0]])
    assert torch.allclose(out[0, :2], clean[:2]) and not torch.allclose(out[0, 2:], clean[2:])
    assert torch.allclose(out[1:], embed.proj(TEXT[1:]))
    assert torch.allclose(embed.eval()(TEXT, MASK)[0], clean)


def test_text_embed_mask_shape_rule():
    with pytest.raises(ShapeError, match="'mask' must be"):
        params("text_embed", width=6).infer(text=(5, 4), mask=(4,))


# ---- class_tokens, concat_tokens ------------------------------------------------------------------------
def test_class_tokens_shape_and_null_row():
    tokens = ClassTokens(params("class_tokens", classes=10, width=8, tokens=2), {"y": ()}, [(2, 8)])
    out = tokens(torch.tensor([3, 10]))
    assert out.shape == (2, 2, 8)
    assert torch.equal(out[1].flatten(), tokens.embedding_table.weight[10])      # index `classes` = null


def test_concat_tokens():
    a, b = torch.randn(2, 1, 8), torch.randn(2, 3, 8)
    assert torch.equal(ConcatTokens(None, {}, [])(a, b), torch.cat([a, b], 1))
    assert params("concat_tokens").infer(a=(1, 8), b=(3, 8)) == (4, 8)
    with pytest.raises(ShapeError, match="equal widths"):
        params("concat_tokens").infer(a=(1, 8), b=(3, 6))


# ---- dit_cond_block -------------------------------------------------------------------------------------
def cond_block():
    torch.manual_seed(0)
    block = DiTCondBlock(params("dit_cond_block", heads=2), {"x": (4, 8), "c": (8,), "ctx_tokens": (2, 8)}, [(4, 8)])
    with torch.no_grad():
        for p in block.adaLN_modulation.parameters():      # leave adaLN-Zero's identity start
            p.normal_(std=0.2)
    return block


def test_cond_block_is_identity_at_init_and_attends_to_context():
    torch.manual_seed(1)
    x, c, ctx = torch.randn(2, 4, 8), torch.randn(2, 8), torch.randn(2, 2, 8)
    fresh = DiTCondBlock(params("dit_cond_block", heads=2), {"x": (4, 8), "c": (8,), "ctx_tokens": (2, 8)}, [(4, 8)])
    assert torch.equal(fresh(x, c, ctx), x)
    block = cond_block()
    assert not torch.allclose(block(x, c, ctx), block(x, c, torch.randn(2, 2, 8)))
    assert block(x, c, ctx).shape == x.shape


def test_cond_block_route_mask_semantics():
    torch.manual_seed(1)
    x, c, ctx = torch.randn(2, 4, 8), torch.randn(2, 8), torch.randn(2, 2, 8)
    block = cond_block()
    assert torch.allclose(block(x, c, ctx, route_mask=torch.ones(2, 8)), block(x, c, ctx))
    mask = torch.tensor([[1.0] * 4 + [0.0] * 4, [0.0] * 4 + [1.0] * 4])
    h0 = x * mask[:, None]
    expected = x + (block(h0, c, ctx * mask[:, None]) - h0)                       # DTR Eq. 4: x + (h2 - h0)
    assert torch.allclose(block(x, c, ctx, route_mask=mask), expected)


def test_cond_block_shape_rules():
    p = params("dit_cond_block", heads=2)
    with pytest.raises(ShapeError, match="'ctx_tokens' have width 6"):
        p.infer(x=(4, 8), c=(8,), ctx_tokens=(2, 6))
    with pytest.raises(ShapeError, match="'c' has width 6"):
        p.infer(x=(4, 8), c=(6,), ctx_tokens=(2, 8))
