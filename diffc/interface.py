"""The contract between a compiled model and everything that drives it (training, sampling, evaluation).

A compiled model is a `torch.nn.Module` called as

    pred, aux = model(x, noise_level, cond)

* `x`           [N, C, H, W] noisy sample (`interface.sample_shape` = (C, H, W)).
* `noise_level` [N] in the parameterisation the spec declares (`interface.noise`):
      timestep[T]  integer-valued DDPM index 0..T-1 (float or long tensor), t=0 clean, T-1 pure noise;
      time         continuous flow-matching time in [0, 1], SiT convention: 0 = pure noise, 1 = data;
      sigma        EDM noise standard deviation (>0).
* `cond`        dict condition-name -> tensor (may be empty or miss keys: a missing condition is null).
      label   [N] long, a class index, or `classes` (== the null class) for dropped / unconditional;
      text    [N, L, D] float embeddings, `cond[name + ".mask"]` [N, L] bool (True = real token) optional;
      control [N, K] float metadata scalars (crop/flip/size); NaN rows mean dropped.
* returns `pred` [N, C_out, H, W] and `aux`, a dict of named taps: auxiliary loss terms (un-weighted
  scalars, their weights in `interface.aux_losses`) and other taps (e.g. EDM2's per-sample `logvar` [N]).

This module is plain Python (no torch import) so that `diffc check` stays fast.
"""
from __future__ import annotations

import attrs

NOISE_KINDS = ("timestep", "time", "sigma")
COND_KINDS = ("label", "text", "control")
# Control metadata recorded per sample by the data pipeline (Berrada et al. 2024; sizes and crops as
# fractions of the training resolution), and its "no augmentation" value, the default when sampling.
CONTROL_FIELDS = ("orig_h", "orig_w", "crop_top", "crop_left", "crop_h", "crop_w", "flip")
NO_AUGMENTATION = (1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0)


@attrs.frozen
class NoiseInput:
    name: str
    kind: str                      # one of NOISE_KINDS
    steps: int | None = None       # T for kind == "timestep"
    schedule: str = "linear"       # betas for "timestep" (linear | cosine); path for "time" (linear)


@attrs.frozen
class Condition:
    name: str
    kind: str                      # one of COND_KINDS
    dims: tuple[int, ...]          # label: (classes,); text: (L, D); control: (K,)
    dropout: float = 0.0           # probability of replacing by null during training (for guidance)
    group: str = "semantic"        # "semantic" (label, text) or "control" (metadata): guided separately

    @property
    def classes(self) -> int:
        return self.dims[0]


@attrs.frozen
class ModelInterface:
    sample_shape: tuple[int, int, int]          # (C, H, W) of x
    out_channels: int                           # channels of pred (may be 2*C with learned variance)
    noise: NoiseInput
    conditions: tuple[Condition, ...] = ()
    aux_losses: dict = attrs.field(factory=dict)  # aux key -> weight (e.g. LayerSync's 0.2)
    stages: tuple = ()                           # multi-stage boundaries as (kind, value) pairs, if any

    def condition(self, name: str) -> Condition:
        for c in self.conditions:
            if c.name == name:
                return c
        raise KeyError(name)
