"""`diffc ema RUN --metric fid`: reconstruct post-hoc EMA profiles of a real (tiny) run and rank them."""
import re

import pytest
from cli_helpers import run_cli

RECIPE = """data:       {name: digits, resolution: 16}
objective:  {kind: ddpm_eps}
optimizer:  {kind: adamw, lr: 1.0e-3}
batch:      32
duration:   512
ema:        {kind: power, sigma_rel: [0.05, 0.10], snapshot_every: 128}
checkpoint: {every: 256, keep: 1}
sample:     {every: null, n: 4, steps: 2}
log:        {every: 256, tensorboard: false}
"""


@pytest.mark.slow
def test_ema_sweep_reports_a_metric_per_profile(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    run = tmp_path / "run"
    code, out, err = run_cli(["train", "specs/dit.diffspec", "--model", "DiT_tiny", "--recipe", recipe,
                              "--run-dir", run])
    assert code == 0, err
    assert sorted(p.name for p in (run / "phema").glob("*.pt"))[:2] == [
        "phema-000000000128-0.050.pt", "phema-000000000128-0.100.pt"]
    code, out, err = run_cli(["ema", run, "--sigma-rel", "0.07", "--sigma-rel", "0.09", "--metric", "fid",
                              "--samples", "24", "--out", tmp_path / "phema.pt"])
    assert code == 0, err
    rows = re.findall(r"^\s+(0\.0[79]0)\s+([\d.]+)\s", out, re.M)
    assert [r[0] for r in rows] == ["0.070", "0.090"] and all(float(r[1]) > 0 for r in rows)
    assert re.search(r"best: sigma_rel 0\.0[79]0", out)
    # the bare length works as a profile name
    code, out, err = run_cli(["sample", tmp_path / "phema.pt", "--ema", "0.07", "--n", "2", "--steps", "2",
                              "--out", tmp_path / "s"])
    assert code == 0, err
