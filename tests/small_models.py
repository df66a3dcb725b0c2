"""The small model of every shipped spec, and inputs that reach every stage / mask row (export, graph breaks)."""
from pathlib import Path

import torch

from diffc.compiler.summary import dummy_inputs

SPECS = Path(__file__).resolve().parents[1] / "specs"
# (spec, model): the small model of every shipped spec that has one
MODELS = [("adm_unet", "ADM_tiny"), ("adm_unet_dtr", "ADM_tiny_DTR"), ("adm_unet_dtr", "ADM_tiny_DTR_attention"),
          ("dit", "DiT_tiny"), ("dit_disentangled", "DiT_disentangled_tiny"), ("dit_dtr", "DiT_tiny_DTR"),
          ("edm2_tiny", "edm2_tiny"), ("multistage_unet", "MultistageDDPMpp_tiny"), ("sit_layersync", "SiT_tiny"),
          ("sit_layersync", "SiT_tiny_LayerSync"), ("study", "DTR"), ("study", "LayerSync"), ("study", "MultiStage")]


def inputs(interface, gen, n=6):
    x, _, cond = dummy_inputs(interface, "cpu", batch=n)
    x = torch.randn(x.shape, generator=gen)
    t = {"timestep": torch.tensor([0.0, 10, 300, 500, 800, 999]), "time": torch.linspace(0.01, 0.99, n),
         "sigma": torch.tensor([0.01, 9.0, 1.0, 40.0, 2.4, 3.0])}[interface.noise.kind]
    for c in interface.conditions:
        cond[c.name] = (torch.randint(0, c.classes, (n,), generator=gen) if c.kind == "label"
                        else torch.randn(n, *c.dims, generator=gen))
    return x, t, cond
