"""examples/import_dit_checkpoint runs: a released-layout DiT state_dict is imported and sampled, and the samples
equal those of the same weights loaded directly into the compiled spec."""
import runpy
import sys
from pathlib import Path

import numpy as np
import torch

from diffc.checkpoints import InferenceBundle
from diffc.compiler import build_model
from diffc.parameterizations import build_parameterization
from diffc.sampling.generate import SamplerConfig, generate

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "import_dit_checkpoint" / "import_and_sample.py"


def test_import_dit_checkpoint_example(tmp_path, monkeypatch, capsys):
    built = build_model(ROOT / "specs" / "dit.diffspec", "DiT_tiny")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in built.module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
    torch.save(built.module.state_dict(), tmp_path / "DiT-tiny.pt")      # the released files' layout: bare EMA
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), str(tmp_path / "DiT-tiny.pt"), "--model", "DiT_tiny",
                                      "--class", "3", "--steps", "4", "--n", "3", "--out", str(tmp_path / "out")])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    assert "DiT_tiny: 3 samples of class 3" in capsys.readouterr().out
    assert (tmp_path / "out" / "grid.png").is_file()
    direct = InferenceBundle(built.module.eval(), built.interface,
                             build_parameterization({"kind": "ddpm_eps"}, built.interface), {}, {})
    config = SamplerConfig("ddpm", steps=4, guidance=4.0, guidance_channels=3)
    expected = next(generate(direct, 3, config=config, labels=3, progress=False))[1].permute(0, 2, 3, 1).numpy()
    with np.load(tmp_path / "out" / "samples.npz") as data:
        assert np.array_equal(data["arr_0"], expected)
