"""Outputs of the four methods on fixed seeded inputs, float64: the numbers the method refactor must keep.

`python tests/method_reference.py` writes tests/data/method_reference.npz from the current code (it was run
once, before the methods moved into diffc/methods/); tests/test_method_reference.py compares the live code
against that file bit for bit.
"""
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "method_reference.npz"
ROUTE_TABLES = [(64, 0.8, 4.0, 1000), (128, 0.8, 4.0, 1000), (384, 0.8, 4.0, 1000), (1152, 0.8, 4.0, 1000),
                (96, 0.5, 2.0, 100), (1024, 0.3, 1.0, 7)]
MODELS = {  # key -> (spec, model, noise levels); float64 except EDM2, whose MP layers normalise in float32
    "dtr": ("specs/dit_dtr.diffspec", "DiT_tiny_DTR", [0.0, 1.0, 250.0, 500.0, 998.0, 999.0]),
    "dtr_unet": ("specs/adm_unet_dtr.diffspec", "ADM_tiny_DTR_attention", [0.0, 300.0, 999.0]),
    "layersync": ("specs/sit_layersync.diffspec", "SiT_tiny_LayerSync", [0.05, 0.4, 0.93]),
    "multistage": ("specs/multistage_unet.diffspec", "MultistageDDPMpp_tiny", [0.05, 1.0, 2.0, 5.0, 8.0, 40.0]),
    "edm2": ("specs/edm2_tiny.diffspec", "edm2_tiny", [0.01, 0.5, 3.0, 20.0]),
}


def dtype_of(key: str):
    return torch.float32 if key == "edm2" else torch.float64


def seeded_model(spec: str, model: str, dtype):
    """The model in `dtype` with every parameter drawn from one seeded generator (zero-init layers included)."""
    from diffc.compiler import build_model
    module = build_model(ROOT / spec, model).module.to(dtype)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return module


def seeded_inputs(module, levels, dtype):
    gen = torch.Generator().manual_seed(1)
    interface = module.interface
    n = len(levels)
    x = torch.randn(n, *interface.sample_shape, generator=gen, dtype=torch.float64).to(dtype)
    cond = {c.name: torch.arange(n) % (c.classes + 1) for c in interface.conditions if c.kind == "label"}
    return x, torch.tensor(levels, dtype=dtype), cond


def method_outputs() -> dict[str, np.ndarray]:
    from diffc.methods.route import route_table
    out = {}
    for channels, window, weight, tasks in ROUTE_TABLES:
        table = route_table(channels, window, weight, tasks)
        out[f"route_table/{channels}/{window}/{weight}/{tasks}"] = np.packbits(table.numpy().astype(bool))
    for key, (spec, model, levels) in MODELS.items():
        module = seeded_model(spec, model, dtype_of(key))
        x, level, cond = seeded_inputs(module, levels, dtype_of(key))
        torch.manual_seed(2)                 # dropout (EDM2's) draws from the global generator
        pred, aux = module(x, level, cond)
        out[f"{key}/pred"] = pred.detach().numpy()
        for name, value in sorted(aux.items()):
            out[f"{key}/aux/{name}"] = value.detach().numpy()
        loss = pred.square().mean() + sum(v.sum() for v in aux.values())
        loss.backward()
        out[f"{key}/grad"] = np.stack([p.grad.square().sum().numpy() for p in module.parameters()
                                       if p.grad is not None])
    return out


if __name__ == "__main__":
    np.savez_compressed(DATA, **method_outputs())
    print(f"wrote {DATA} ({DATA.stat().st_size} bytes)")
