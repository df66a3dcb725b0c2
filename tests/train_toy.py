"""A toy compiled model following diffc.interface exactly (a few convs), for training tests before/without the compiler."""
from __future__ import annotations

import hashlib

import attrs
import torch
from torch import nn

from diffc.interface import Condition, ModelInterface, NoiseInput

TOY_SPEC = "diffspec 1\n# toy model for tests\n"


class ToyModel(nn.Module):
    def __init__(self, interface: ModelInterface, width: int = 16):
        super().__init__()
        self.interface = interface
        c, h, w = interface.sample_shape
        self.inp = nn.Conv2d(c, width, 3, padding=1)
        self.mid = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Conv2d(width, interface.out_channels, 3, padding=1)
        self.noise = nn.Linear(1, width)
        self.pos = nn.Parameter(torch.randn(1, h * w // 4, width) * 0.02)     # a learned 2x2-patch position table
        label = [cd for cd in interface.conditions if cd.kind == "label"]
        self.label = nn.Embedding(label[0].classes + 1, width) if label else None
        self.logvar = nn.Linear(1, 1) if interface.noise.kind == "sigma" else None

    def forward(self, x, noise_level, cond):
        level = noise_level.float().view(-1, 1)
        if self.interface.noise.kind == "timestep":
            level = level / self.interface.noise.steps
        elif self.interface.noise.kind == "sigma":
            level = level.log() / 4
        emb = self.noise(level)
        if self.label is not None:
            name = next(cd.name for cd in self.interface.conditions if cd.kind == "label")
            labels = cond.get(name, torch.full((x.shape[0],), self.label.num_embeddings - 1, device=x.device))
            emb = emb + self.label(labels)
        h = torch.relu(self.inp(x) + emb[:, :, None, None])
        pos = self.pos.mean(1)[:, :, None, None]
        h = torch.relu(self.mid(h) + pos)
        aux = {"smooth": h.square().mean() * 1e-3}
        if self.logvar is not None:
            aux["logvar"] = self.logvar(level).view(-1)
        return self.out(h), aux


@attrs.define
class ToyBuilt:
    module: nn.Module
    interface: ModelInterface
    spec_path: str = "toy.diffspec"
    spec_text: str = TOY_SPEC
    spec_hash: str = hashlib.sha256(TOY_SPEC.encode()).hexdigest()
    model_name: str = "Toy"
    recipe_path: object = None


def toy_interface(noise="timestep", out_channels=1, size=16, aux=True, classes=10, stages=()):
    kinds = {"timestep": NoiseInput("t", "timestep", 1000, "linear"), "time": NoiseInput("t", "time"),
             "sigma": NoiseInput("sigma", "sigma")}
    return ModelInterface((1, size, size), out_channels, kinds[noise], (Condition("y", "label", (classes,), 0.1),),
                          {"smooth": 0.5} if aux else {}, stages)


def toy_built(seed=0, **kwargs) -> ToyBuilt:
    torch.manual_seed(seed)
    interface = toy_interface(**kwargs)
    return ToyBuilt(ToyModel(interface), interface)


def install_toy_builder(monkeypatch, **kwargs):
    """Make checkpoints.rebuild_model produce the toy model (the embedded spec text is the toy's)."""
    from diffc import checkpoints
    monkeypatch.setattr(checkpoints, "rebuild_model", lambda data, device="cpu": toy_built(**kwargs))
