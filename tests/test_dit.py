"""DiT: reference parameter counts through `diffc compile`, outputs against the reference formulas
(dit_sit.md), and weights imported from the reference state_dict layout key for key."""
import math
from pathlib import Path
import re

import pytest
import torch
from click.testing import CliRunner

from diffc.cli import cli
from diffc.compiler import build_model
from diffc.errors import UserError
from diffc.weights import import_state_dict

REFERENCE = {  # param_counts.md: params (all), incl. the frozen pos_embed
    "DiT_S_8": 33_148_160, "DiT_S_4": 32_945_024, "DiT_S_2": 32_963_360,
    "DiT_B_8": 130_881_536, "DiT_B_4": 130_475_648, "DiT_B_2": 130_512_416,
    "DiT_L_8": 458_594_816, "DiT_L_4": 458_053_760, "DiT_L_2": 458_102_816,
    "DiT_XL_8": 675_683_072, "DiT_XL_4": 675_074_432, "DiT_XL_2": 675_129_632,
}
GMACS = {"DiT_S_2": 6.056, "DiT_B_4": 5.565, "DiT_XL_2": 118.621, "DiT_XL_8": 7.392}
TSV = Path(__file__).parent / "data" / "dit_s2_state_dict.tsv"   # reference key layout (shared/reference)


@pytest.mark.parametrize("model", sorted(REFERENCE))
def test_compile_prints_the_reference_parameter_count(model):
    result = CliRunner().invoke(cli, ["compile", "specs/dit.diffspec", "--model", model])
    assert result.exit_code == 0, result.output
    count = int(re.search(r"parameters: ([\d,]+)", result.output).group(1).replace(",", ""))
    assert count == REFERENCE[model]
    if model in GMACS:
        macs = float(re.search(r"MACs per sample: ([\d.]+) G", result.output).group(1))
        assert macs == pytest.approx(GMACS[model], abs=1e-3)


def test_closed_form_per_block():
    d = 384
    built = build_model("specs/dit.diffspec", "DiT_S_2", device="meta")
    block = built.module.get_submodule("blocks.0")
    assert sum(p.numel() for p in block.parameters()) == 18 * d * d + 15 * d


def _sincos(width, positions):
    omega = [1.0 / 10000 ** (i / (width / 2)) for i in range(width // 2)]
    return [[math.sin(p * w) for w in omega] + [math.cos(p * w) for w in omega] for p in positions]


def reference_dit(m, x, t, y, patch, heads):
    """DiT forward written from dit_sit.md §2.2 with explicit loops/formulas (independent of diffc's code)."""
    sd = {k: v.double() for k, v in m.state_dict().items()}
    n, c, size, _ = x.shape
    g = size // patch
    d = sd["x_embedder.proj.bias"].shape[0]
    # patchify: conv k=p stride=p, tokens row-major
    tokens = torch.zeros(n, g * g, d, dtype=torch.float64)
    w = sd["x_embedder.proj.weight"]
    for r in range(g):
        for col in range(g):
            pix = x[:, :, r * patch:(r + 1) * patch, col * patch:(col + 1) * patch].double()
            tokens[:, r * g + col] = torch.einsum("nchw,dchw->nd", pix, w) + sd["x_embedder.proj.bias"]
    # 2-D sin-cos: first half encodes the column, second half the row
    pos = torch.tensor([_sincos(d // 2, [k % g])[0] + _sincos(d // 2, [k // g])[0] for k in range(g * g)],
                       dtype=torch.float64)
    h = tokens + pos
    # timestep: [cos, sin] with f_i = exp(-ln(10000) i / 128), then Linear-SiLU-Linear
    f = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float64) / 128)
    phi = torch.cat([torch.cos(t.double()[:, None] * f), torch.sin(t.double()[:, None] * f)], dim=1)
    lin = lambda v, k: v @ sd[k + ".weight"].T + sd[k + ".bias"]
    silu = lambda v: v * torch.sigmoid(v)
    temb = lin(silu(lin(phi, "t_embedder.mlp.0")), "t_embedder.mlp.2")
    cvec = temb + sd["y_embedder.embedding_table.weight"][y]
    ln = lambda v: (v - v.mean(-1, keepdim=True)) / torch.sqrt(v.var(-1, unbiased=False, keepdim=True) + 1e-6)
    gelu = lambda v: 0.5 * v * (1 + torch.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    for b in range(depth):
        p = f"blocks.{b}."
        mod = lin(silu(cvec), p + "adaLN_modulation.1").chunk(6, dim=1)
        sh1, sc1, g1, sh2, sc2, g2 = (v[:, None] for v in mod)
        a = ln(h) * (1 + sc1) + sh1
        qkv = lin(a, p + "attn.qkv").reshape(n, g * g, 3, heads, d // heads)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        att = torch.softmax(torch.einsum("nqhc,nkhc->nhqk", q, k) / math.sqrt(d // heads), dim=-1)
        o = torch.einsum("nhqk,nkhc->nqhc", att, v).reshape(n, g * g, d)
        h = h + g1 * lin(o, p + "attn.proj")
        mlp = lin(gelu(lin(ln(h) * (1 + sc2) + sh2, p + "mlp.fc1")), p + "mlp.fc2")
        h = h + g2 * mlp
    sh, sc = (v[:, None] for v in lin(silu(cvec), "final_layer.adaLN_modulation.1").chunk(2, dim=1))
    out = lin(ln(h) * (1 + sc) + sh, "final_layer.linear")
    cout = out.shape[-1] // (patch * patch)
    img = torch.zeros(n, cout, size, size, dtype=torch.float64)
    for r in range(g):
        for col in range(g):
            img[:, :, r * patch:(r + 1) * patch, col * patch:(col + 1) * patch] = \
                out[:, r * g + col].reshape(n, patch, patch, cout).permute(0, 3, 1, 2)
    return img


def test_forward_equals_the_reference_formulas():
    torch.manual_seed(0)
    built = build_model("specs/dit.diffspec", "DiT_tiny")
    m = built.module.double()
    with torch.no_grad():   # leave adaLN-Zero's zeros behind so every term matters
        for name, p in m.named_parameters():
            if "adaLN" in name or "final_layer.linear" in name:
                p.normal_(0, 0.05)
    x, t, y = torch.randn(3, 1, 16, 16).double(), torch.tensor([0, 417, 999]), torch.tensor([1, 7, 10])
    pred, aux = m(x, t, {"y": y})
    assert aux == {} and pred.shape == (3, 2, 16, 16)
    expected = reference_dit(m, x, t, y, patch=2, heads=4)
    assert expected.abs().max() > 0.1
    # the sin-cos tables and timestep features are float32 by design (as in the reference code)
    torch.testing.assert_close(pred, expected, rtol=1e-5, atol=1e-6)


def test_init_is_adaln_zero_and_outputs_zero():
    built = build_model("specs/dit.diffspec", "DiT_tiny")
    pred, _ = built.module(torch.randn(2, 1, 16, 16), torch.tensor([3, 900]), {"y": torch.tensor([0, 4])})
    assert torch.count_nonzero(pred) == 0
    assert not built.module.get_parameter("pos_embed").requires_grad


def _reference_state_dict(path=TSV):
    state = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.rstrip("\n").split("\t")
        state[key] = torch.randn(*[int(s) for s in shape.split("x")] if shape else [])
    return state


def test_import_reference_layout_key_for_key():
    state = _reference_state_dict()
    built = build_model("specs/dit.diffspec", "DiT_S_2")
    assert set(built.module.state_dict()) == set(state)
    import_state_dict(built.module, {"module." + k: v for k, v in state.items()})   # DDP prefixes are stripped
    for key, value in state.items():
        assert torch.equal(built.module.state_dict()[key], value)


def test_import_reports_mismatches():
    state = _reference_state_dict()
    built = build_model("specs/dit.diffspec", "DiT_S_4")   # patch 4: x_embedder and final layer differ
    with pytest.raises(UserError) as err:
        import_state_dict(built.module, state)
    notes = " ".join(err.value.diagnostics[0].notes)
    assert "shape mismatch x_embedder.proj.weight: file (384, 4, 2, 2) vs model (384, 4, 4, 4)" in notes


def test_import_weights_command(tmp_path):
    state = _reference_state_dict()
    torch.save(state, tmp_path / "ref.pt")
    result = CliRunner().invoke(cli, ["import-weights", "specs/dit.diffspec", str(tmp_path / "ref.pt"),
                                      "--model", "DiT_S_2", "-o", str(tmp_path / "out.pt")])
    assert result.exit_code == 0, result.output
    saved = torch.load(tmp_path / "out.pt", weights_only=True)
    assert torch.equal(saved["model"]["blocks.3.attn.qkv.weight"], state["blocks.3.attn.qkv.weight"])
    assert saved["model_name"] == "DiT_S_2"
