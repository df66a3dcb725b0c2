"""Denoising Task Routing (@route): mask table, placement, per-sample selection, beta = 1 exactness."""
import re

import pytest
import torch
from click.testing import CliRunner

from diffc.cli import cli
from diffc.compiler import build_model_from_text
from diffc.methods.route import mask_starts, route_table

# dtr.md reference: C -> (C_beta, L, starts at t = 0/250/500/750/900/999, always-on)
REFERENCE = {
    384: (307, 77, [0, 0, 5, 24, 51, 77], 230),
    768: (614, 154, [0, 1, 10, 49, 101, 154], 460),
    1024: (819, 205, [0, 1, 13, 65, 135, 205], 614),
    1152: (921, 231, [0, 1, 14, 73, 152, 231], 690),
}
PROBES = [0, 250, 500, 750, 900, 999]


@pytest.mark.parametrize("channels", sorted(REFERENCE))
def test_mask_table_equals_the_reference_starts(channels):
    active, travel, starts, always_on = REFERENCE[channels]
    table = route_table(channels, 0.8, 4.0, 1000)
    assert table.shape == (1000, channels)
    assert torch.all(table.sum(1) == active)
    got = [int(torch.nonzero(table[t])[0]) for t in PROBES]
    assert got == starts == [mask_starts(channels, 0.8, 4.0, 1000)[t] for t in PROBES]
    assert int(table.prod(0).sum()) == always_on                  # channels on for every task
    assert int(table[999].nonzero()[-1]) == channels - 1           # the window ends at the last channel
    if channels == 1024:
        assert len({tuple(r.tolist()) for r in table}) == 206      # only 206 distinct masks (dtr.md)


def _spec(window):
    return f"""import "specs/dit.diffspec"
model Routed = DiT_tiny with {{
  @route({window}, 4) blocks
}}
"""


def _pair(window, seed=0):
    torch.manual_seed(seed)
    plain = build_model_from_text(_spec(window).replace("@route", "@mp").split("model Routed")[0]
                                  + "model Plain = DiT_tiny\n", "./t.diffspec", "Plain", folder=".").module
    routed = build_model_from_text(_spec(window), "./t.diffspec", "Routed", folder=".").module
    with torch.no_grad():
        for p in plain.parameters():
            p.normal_(0, 0.1)
    routed.load_state_dict(plain.state_dict())
    return plain, routed


def test_window_one_is_bit_exact_with_the_plain_model():
    plain, routed = _pair(1.0)
    x, t, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 10, 500, 999]), torch.tensor([1, 2, 3, 10])
    assert torch.equal(plain(x, t, {"y": y})[0], routed(x, t, {"y": y})[0])


def test_masks_change_the_output_and_are_buffers_not_parameters():
    plain, routed = _pair(0.8)
    x, t, y = torch.randn(2, 1, 16, 16), torch.tensor([0, 999]), torch.tensor([1, 2])
    assert not torch.allclose(plain(x, t, {"y": y})[0], routed(x, t, {"y": y})[0])
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in routed.parameters())
    assert set(plain.state_dict()) == set(routed.state_dict())     # masks are not checkpointed
    assert any(b.shape == (1000, 128) for b in routed.buffers())


def test_mixed_batch_equals_per_sample_runs():
    _, routed = _pair(0.8, seed=1)
    routed = routed.double()       # float64 so batch-size-dependent matmul rounding cannot hide a bug
    x, t, y = torch.randn(5, 1, 16, 16).double(), torch.tensor([999, 0, 400, 731, 120]), torch.tensor([0, 1, 2, 3, 10])
    batch = routed(x, t, {"y": y})[0]
    for i in range(5):
        single = routed(x[i:i + 1], t[i:i + 1], {"y": y[i:i + 1]})[0]
        torch.testing.assert_close(batch[i:i + 1], single, rtol=1e-12, atol=1e-12)


def test_block_applies_the_mask_to_its_input_as_in_dtr_md():
    from blocks.nn.dit import DiTBlock, modulate  # noqa: F401  (the block under test)
    _, routed = _pair(0.8, seed=2)
    block = routed.get_submodule("blocks.1")
    x, c = torch.randn(2, 64, 128), torch.randn(2, 128)
    m = route_table(128, 0.8, 4.0, 1000)[[0, 999]]
    sh1, sc1, g1, sh2, sc2, g2 = block.adaLN_modulation(c).chunk(6, dim=-1)
    h0 = m[:, None] * x                                       # only the block input is masked
    h1 = h0 + g1[:, None] * block.attn(block.norm1(h0) * (1 + sc1[:, None]) + sh1[:, None])
    h2 = h1 + g2[:, None] * block.mlp(block.norm2(h1) * (1 + sc2[:, None]) + sh2[:, None])
    torch.testing.assert_close(block(x, c, route_mask=m), x + (h2 - h0), rtol=1e-5, atol=1e-6)


def test_continuous_time_selects_rows_by_one_minus_t():
    """Flow time t=1 is data (clean): task index round((1 - t) (T - 1))."""
    from diffc.compiler.runtime import noise_fraction
    from diffc.methods.route import route_rows
    from diffc.interface import NoiseInput
    rows = route_rows(noise_fraction(torch.tensor([1.0, 0.0, 0.5]), NoiseInput("t", "time")), 1000)
    assert rows.tolist() == [0, 999, 500]
    rows = route_rows(noise_fraction(torch.tensor([0, 999, 250]), NoiseInput("t", "timestep", 1000)), 1000)
    assert rows.tolist() == [0, 999, 250]


def test_compile_reports_active_fraction():
    result = CliRunner().invoke(cli, ["compile", "specs/dit_dtr.diffspec", "--model", "DiT_S_2_DTR"])
    assert result.exit_code == 0, result.output
    line = next(l for l in result.output.splitlines() if l.startswith("@route C=384"))
    assert "active 307/384 = 0.799" in line and "0 / 0 / 5 / 24 / 77" in line and "230 channels always on" in line
    assert re.search(r"effective MACs", result.output)
