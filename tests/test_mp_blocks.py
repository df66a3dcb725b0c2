"""EDM2 magnitude-preserving primitives against their formulas (edm2.md Sec. 1.2-1.3), and the @mp pass:
substitution of MP forms and the lint's located errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from diffc.blocks.nn import mp as M
from diffc.compiler import build_model_from_text, compile_program
from diffc.compiler.program import load_text
from diffc.errors import UserError
from diffc.registry import REGISTRY


def rms(x):
    return x.float().pow(2).mean().sqrt().item()


def make(block, in_shapes, **params):
    """Build a registered block's torch module the way the emitter does."""
    info = REGISTRY.block(block)
    p = info.params(**params)
    out = p.infer(**in_shapes)
    return info.load_module()(p, in_shapes, (out,))


def test_normalize_formula():
    x = torch.randn(5, 3, 4) * 7
    n = torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True)
    expected = x / (1e-4 + n / math.sqrt(12))
    torch.testing.assert_close(M.normalize(x), expected)
    per_channel = M.normalize(x, dim=1)
    torch.testing.assert_close(per_channel.pow(2).mean(1), torch.ones(5, 4), rtol=1e-3, atol=0)


def test_mp_silu_is_silu_over_0596_and_unit_rms():
    x = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(M.mp_silu(x), F.silu(x) / 0.596)
    assert rms(M.mp_silu(x)) == pytest.approx(0.59678 / 0.596, abs=0.01)


def test_mp_sum_formula_and_endpoints():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(100_000, generator=g), torch.randn(100_000, generator=g)
    torch.testing.assert_close(M.mp_sum(a, b, 0.3), (0.7 * a + 0.3 * b) / math.sqrt(0.7 ** 2 + 0.3 ** 2))
    torch.testing.assert_close(M.mp_sum(a, b, 0.0), a)
    torch.testing.assert_close(M.mp_sum(a, b, 1.0), b)
    assert rms(M.mp_sum(a, b, 0.3)) == pytest.approx(1.0, abs=0.01)


def test_mp_cat_weights_and_equal_energy():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(4000, 3, 2, 2, generator=g), torch.randn(4000, 5, 2, 2, generator=g)
    t = 0.3
    c = math.sqrt(8 / ((1 - t) ** 2 + t ** 2))
    expected = torch.cat([a * c * (1 - t) / math.sqrt(3), b * c * t / math.sqrt(5)], dim=1)
    torch.testing.assert_close(M.mp_cat(a, b, t), expected)
    out = M.mp_cat(a, b, 0.5)
    assert rms(out) == pytest.approx(1.0, abs=0.02)
    assert out[:, :3].pow(2).sum().item() == pytest.approx(out[:, 3:].pow(2).sum().item(), rel=0.03)


def test_mp_conv_unit_rows_gain_and_unit_output():
    conv = make("mp_conv", {"x": (64, 16, 16)}, out=96, kernel=3)
    assert [n for n, _ in conv.named_parameters()] == ["weight"]          # no bias (EDM2 Sec. 3)
    rows = conv.effective_weight().flatten(1).norm(dim=1)
    torch.testing.assert_close(rows, torch.ones(96), rtol=2e-4, atol=0)
    rows = conv.effective_weight(torch.tensor(2.5)).flatten(1).norm(dim=1)
    torch.testing.assert_close(rows, torch.full((96,), 2.5), rtol=2e-4, atol=0)
    with torch.no_grad():
        y = conv(torch.randn(8, 64, 16, 16))
    assert y.shape == (8, 96, 16, 16)
    assert rms(y) == pytest.approx(1.0, abs=0.1)


def test_forced_weight_norm_only_in_training():
    lin = make("mp_linear", {"x": (32,)}, out=8)
    with torch.no_grad():
        lin.weight.mul_(3.0)
    stored = lin.weight.detach().clone()
    lin.eval()
    lin(torch.randn(4, 32))
    torch.testing.assert_close(lin.weight.detach(), stored)             # eval: stored weight untouched
    lin.train()
    lin(torch.randn(4, 32))
    norms = lin.weight.detach().norm(dim=1)
    torch.testing.assert_close(norms, torch.full((8,), math.sqrt(32)), rtol=2e-4, atol=0)


def test_fourier_buffers_formula_and_unit_rms():
    fourier = make("mp_fourier", {"x": ()}, channels=4096)
    assert not list(fourier.parameters())
    assert sorted(n for n, _ in fourier.named_buffers()) == ["freqs", "phases"]
    x = torch.randn(16)
    expected = math.sqrt(2) * torch.cos(x[:, None] * fourier.freqs[None] + fourier.phases[None])
    torch.testing.assert_close(fourier(x), expected)
    assert rms(fourier(x)) == pytest.approx(1.0, abs=0.05)


def test_noise_cond_onehot_ones_and_scalar():
    sigma = torch.tensor([0.002, 0.5, 80.0])
    torch.testing.assert_close(make("edm2_noise_cond", {"sigma": ()})(sigma), torch.log(sigma) / 4)
    onehot = make("mp_onehot", {"y": ()}, classes=10)(torch.tensor([3, 10]))
    assert onehot[0, 3].item() == pytest.approx(math.sqrt(10)) and rms(onehot[0]) == pytest.approx(1.0)
    assert onehot[1].abs().sum().item() == 0                             # the null class -> zero vector
    ones = make("append_ones", {"x": (2, 4, 4)})(torch.randn(3, 2, 4, 4))
    assert ones.shape == (3, 3, 4, 4) and bool((ones[:, 2] == 1).all())
    assert make("to_scalar", {"x": (1,)})(torch.randn(5, 1)).shape == (5,)


def test_cosine_attention_matches_einsum_layout():
    n, heads, ch, h, w = 2, 3, 8, 4, 4
    qkv = torch.randn(n, 3 * heads * ch, h, w)
    y = qkv.reshape(n, heads, ch, 3, h * w)                              # (head, ch, {q,k,v}) channel layout
    q, k, v = (part / (1e-4 + part.norm(dim=2, keepdim=True) / math.sqrt(ch)) for part in y.unbind(3))
    weights = torch.einsum("nhcq,nhck->nhqk", q, k / math.sqrt(ch)).softmax(dim=3)
    expected = torch.einsum("nhqk,nhck->nhcq", weights, v).reshape(n, heads * ch, h, w)
    torch.testing.assert_close(M.cosine_attention(qkv, heads), expected, rtol=1e-4, atol=1e-5)


def test_edm2_block_shapes_params_and_resampling():
    block = make("edm2_block", {"x": (64, 8, 8), "emb": (128,)}, out=128, flavor="dec", resample="up",
                 attention=True, channels_per_head=64)
    assert [n for n, _ in block.named_parameters()] == [
        "emb_gain", "conv_res0.weight", "emb_linear.weight", "conv_res1.weight", "conv_skip.weight",
        "attn_qkv.weight", "attn_proj.weight"]
    assert block.heads == 2 and block.conv_res0.weight.shape == (128, 64, 3, 3)
    out = block.eval()(torch.randn(2, 64, 8, 8), torch.randn(2, 128))
    assert out.shape == (2, 128, 16, 16)
    enc = make("edm2_block", {"x": (64, 8, 8), "emb": (128,)}, out=64, resample="down", clip_act=0.5)
    out = enc.eval()(torch.randn(2, 64, 8, 8) * 100, torch.randn(2, 128))
    assert out.shape == (2, 64, 4, 4) and out.abs().max().item() <= 0.5


# ---- the @mp pass ---------------------------------------------------------------------------------------

def spec(annotation: str, body: str) -> str:
    return (f"diffspec 1\n{annotation}\nmodel M() {{\n  input x: sample[2, 8, 8]\n  input s: sigma\n"
            f"{body}\n}}\n")


def lint_error(text: str):
    with pytest.raises(UserError) as err:
        compile_program(load_text(text, "x.diffspec"))
    (diag,) = err.value.diagnostics
    return diag


def test_mp_substitutes_forms_and_keeps_shared_params():
    text = spec("@mp", "  a = conv(x, out = 4, kernel = 1)\n  b = silu(a)\n  c = a + b\n  d = cat(a, c)\n"
                       "  e = conv(d, out = 2)\n  return e")
    compiled = compile_program(load_text(text, "x.diffspec"))
    nodes = {n: d["ir"] for n, d in compiled.graph.nodes.items()}
    assert [nodes[k].block for k in "abcde"] == ["mp_conv", "mp_silu", "mp_sum", "mp_cat", "mp_conv"]
    assert nodes["a"].params.kernel == 1 and nodes["a"].params.out == 4 and nodes["c"].params.t == 0.5
    module = build_model_from_text(text, "x.diffspec").module
    assert sorted(module.state_dict()) == ["a.weight", "e.weight"]


def test_mp_strict_rejects_plain_silu_with_location():
    diag = lint_error(spec("@mp(strict = true)", "  h = silu(x)\n  return h"))
    assert (diag.file, diag.line, diag.col) == ("x.diffspec", 6, 7)
    assert "silu" in diag.message and "not magnitude-preserving" in diag.message
    assert diag.help == "use mp_silu"


def test_mp_rejects_gelu_which_has_no_mp_form():
    diag = lint_error(spec("@mp", "  h = conv(x, out = 2)\n  g = gelu(h)\n  return g"))
    assert (diag.line, diag.col) == (7, 7)
    assert "gelu" in diag.message and "mp_silu" in diag.help


def test_mp_rejects_explicit_bias_at_the_argument():
    diag = lint_error(spec("@mp", "  h = conv(x, out = 2, bias = true)\n  return h"))
    assert (diag.line, diag.col) == (6, 31)
    assert "bias" in diag.message
