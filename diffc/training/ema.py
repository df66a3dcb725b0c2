"""Classic exponential moving average of the weights (DiT: decay 0.9999 per step, initialised as a copy)."""
from __future__ import annotations

import torch


def copy_state(module: torch.nn.Module) -> dict:
    """A detached copy of a module's state dict (parameters and buffers)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def lerp_state(target: dict, module: torch.nn.Module, weight: float) -> None:
    """target <- target + weight (theta - target) for floating tensors; other tensors copied verbatim."""
    with torch.no_grad():
        for key, value in module.state_dict().items():
            if value.is_floating_point():
                target[key].lerp_(value.to(target[key].dtype), weight)
            else:
                target[key].copy_(value)


class EMAProfiles:
    """Named copies of a model's state (`self.profiles`), saved and restored with the checkpoint."""
    profiles: dict

    def state_dict(self) -> dict:
        return self.profiles

    def load_state_dict(self, state: dict) -> None:
        for name, tensors in state.items():
            for key, value in tensors.items():
                self.profiles[name][key].copy_(value)


class ClassicEMA(EMAProfiles):
    """theta_ema <- decay theta_ema + (1 - decay) theta after every optimiser step (Polyak averaging)."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.profiles = {"ema": copy_state(module)}

    def update(self, module, nimg: int, batch_size: int) -> None:
        """One step of theta_ema = decay theta_ema + (1 - decay) theta."""
        lerp_state(self.profiles["ema"], module, 1 - self.decay)
