"""The training recipe: attrs classes with explicit defaults, loaded from YAML by `diffc.training.recipe_loader`.

Durations and intervals are counted in images (EDM2 style). In YAML they are written as an integer number of
images, with a binary suffix (`16Ki` = 16*1024 images, `2Mi`), a decimal one (`200k` images, `1M`), or in
optimiser steps (`500 steps`, `10k steps`), which are converted with the global batch size.
"""
from __future__ import annotations

import math
import re

import attrs

from diffc.bounds import (ADAM_BETA, AT_LEAST_ONE, DROP_RATE, NON_NEGATIVE, POSITIVE, PREVIEW_COUNT, PROBABILITY,
                          SEED, Bound, bound)
from diffc.parameterizations import ObjectiveConfig
from diffc.sampling import SAMPLERS

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|k|M|G)?\s*(steps?|img|images)?\s*$")
_SCALE = {None: 1, "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3}


@attrs.frozen
class Duration:
    """An amount of training: `value` images, or `value` optimiser steps when `unit == "steps"`."""
    value: int
    unit: str = "images"

    @classmethod
    def parse(cls, text) -> "Duration":
        if isinstance(text, bool):
            raise ValueError("expected a duration such as 200Ki, 5000 or '10k steps'")
        if isinstance(text, int):
            return cls(text)
        match = _DURATION.match(str(text))
        if not match:
            raise ValueError(f"cannot read {text!r} as a duration: write images (200Ki, 50000, 1M) or steps ('10k steps')")
        number = float(match.group(1)) * _SCALE[match.group(2)]
        if not math.isfinite(number):
            raise ValueError(f"{text!r} is too large")
        if number != int(number):
            raise ValueError(f"{text!r} is not a whole number")
        unit = "steps" if (match.group(3) or "").startswith("step") else "images"
        return cls(int(number), unit)

    def images(self, batch: int) -> int:
        return self.value * batch if self.unit == "steps" else self.value

    def __str__(self) -> str:
        if self.unit == "steps":
            return f"{self.value} steps"
        for suffix in ("Mi", "Ki"):
            if self.value and self.value % _SCALE[suffix] == 0:
                return f"{self.value // _SCALE[suffix]}{suffix}"
        return str(self.value)


def _choice(*names):
    return {"choices": names}


@attrs.define
class DataConfig:
    name: str = attrs.field(default="digits", metadata=_choice("digits", "folder", "npz", "latents"))
    path: str | None = None                   # folder / .npz / .npy (relative to the recipe file)
    # built-in digits: train = the first 1500 (the last 297 are eval's held-out reference), all = 1797
    split: str = attrs.field(default="train", metadata=_choice("train", "all"))
    resolution: int = attrs.field(default=16, metadata=bound(AT_LEAST_ONE))
    hflip: float = attrs.field(default=0.0, metadata=bound(PROBABILITY))        # probability, recorded as control
    crop_scale: float = attrs.field(default=1.0, metadata=bound(Bound(0.05, 1)))  # min random-crop area fraction
    # multiplies plain latent arrays (e.g. 0.18215); a `diffc encode` file carries its own scale
    latent_scale: float = attrs.field(default=1.0, metadata=bound(POSITIVE))


@attrs.define
class AutoencoderConfig:
    """The VAE of latent data (`diffc encode` output): previews, `diffc sample` and `diffc eval` decode with it."""
    path: str | None = None                   # diffusers AutoencoderKL folder (relative to the recipe) or a Hub id
    convention: str | None = attrs.field(default=None, metadata=_choice("sd", "edm2"))  # null: the latent file's


@attrs.define
class WeightingConfig:
    kind: str = attrs.field(default="none", metadata=_choice("none", "min_snr", "p2", "ant_uw"))
    gamma: float = attrs.field(default=5.0, metadata=bound(POSITIVE))  # Min-SNR clip / P2 exponent
    k: float = attrs.field(default=1.0, metadata=bound(POSITIVE))      # P2 offset
    intervals: int = attrs.field(default=8, metadata=bound(Bound(1, 10_000)))   # ANT-UW intervals
    lr: float = attrs.field(default=0.025, metadata=bound(NON_NEGATIVE))  # ANT-UW optimiser group learning rate


@attrs.define
class NoiseConfig:
    kind: str = attrs.field(default="uniform", metadata=_choice("uniform", "lognormal", "logit_normal", "stage_aware"))
    # log-normal P_mean (ln sigma) / logit-normal location
    mean: float = attrs.field(default=-0.4, metadata=bound(Bound()))
    std: float = attrs.field(default=1.0, metadata=bound(POSITIVE))
    # stage-aware: relative probability of each stage (None: equal)
    stage_weights: list[float] | None = attrs.field(default=None, metadata=bound(NON_NEGATIVE))


@attrs.define
class OptimizerConfig:
    kind: str = attrs.field(default="adamw", metadata=_choice("adamw", "adam"))
    lr: float = attrs.field(default=1e-3, metadata=bound(NON_NEGATIVE))
    betas: tuple[float, float] = attrs.field(default=(0.9, 0.99), metadata=bound(ADAM_BETA))
    eps: float = attrs.field(default=1e-8, metadata=bound(POSITIVE))
    weight_decay: float = attrs.field(default=0.0, metadata=bound(NON_NEGATIVE))
    grad_clip: float | None = attrs.field(default=1.0, metadata=bound(POSITIVE))  # max global grad norm; null: off
    # non-finite grads: skip step / zero them
    nonfinite: str = attrs.field(default="skip", metadata=_choice("skip", "zero"))


@attrs.define
class LRConfig:
    kind: str = attrs.field(default="constant", metadata=_choice("constant", "warmup", "cosine", "inv_sqrt"))
    warmup: Duration = attrs.field(default=Duration(0), metadata=bound(NON_NEGATIVE))  # linear ramp from 0
    min_lr: float = attrs.field(default=0.0, metadata=bound(NON_NEGATIVE))  # cosine floor
    ref_batches: int = attrs.field(default=70000, metadata=bound(AT_LEAST_ONE))  # inv_sqrt: t_ref in optimiser steps


@attrs.define
class EMAConfig:
    kind: str = attrs.field(default="power", metadata=_choice("none", "classic", "power"))
    decay: float = attrs.field(default=0.999, metadata=bound(PROBABILITY))  # classic, per step
    # power: profiles tracked at once
    sigma_rel: list[float] = attrs.field(factory=lambda: [0.05, 0.10], metadata=bound(Bound(0, 0.2886, True, True)))
    # power: post-hoc EMA snapshots; null: no snapshots
    snapshot_every: Duration | None = attrs.field(default=None, metadata=bound(POSITIVE))


@attrs.define
class CheckpointConfig:
    every: Duration = attrs.field(default=Duration(32 * 1024), metadata=bound(POSITIVE))
    # also every N minutes; null: off
    minutes: float | None = attrs.field(default=10.0, metadata=bound(Bound(0.01, meaning="at least 0.01 minutes")))
    keep: int = attrs.field(default=3, metadata=bound(AT_LEAST_ONE))


@attrs.define
class SampleConfig:
    # null: only at the end
    every: Duration | None = attrs.field(default=Duration(64 * 1024), metadata=bound(POSITIVE))
    # an early grid at this point as well; null: none
    first: Duration | None = attrs.field(default=Duration(4 * 1024), metadata=bound(POSITIVE))
    n: int = attrs.field(default=64, metadata=bound(PREVIEW_COUNT))
    steps: int = attrs.field(default=50, metadata=bound(Bound(1, 10_000)))
    guidance: float = attrs.field(default=1.0, metadata=bound(NON_NEGATIVE))
    ema: str | None = "auto"                  # EMA profile for the grid; auto: the first one; null: raw weights
    # the grid's sampler, and `diffc sample` / `eval`'s default; null: ddim (DDPM), heun (EDM), ode (flow)
    sampler: str | None = attrs.field(default=None, metadata=_choice(*SAMPLERS))
    seed: int = attrs.field(default=0, metadata=bound(SEED))


@attrs.define
class ConditioningConfig:
    # None: each condition's @drop from the spec
    label_dropout: float | None = attrs.field(default=None, metadata=bound(DROP_RATE))
    control_dropout: float | None = attrs.field(default=None, metadata=bound(DROP_RATE))
    text_dropout: float | None = attrs.field(default=None, metadata=bound(DROP_RATE))
    text_pad_noise: float = attrs.field(default=0.01, metadata=bound(NON_NEGATIVE))  # noisy replicate padding sigma


@attrs.define
class LogConfig:
    every: Duration = attrs.field(default=Duration(4 * 1024), metadata=bound(POSITIVE))
    tensorboard: bool = True


@attrs.define
class Recipe:
    data: DataConfig = attrs.Factory(DataConfig)
    autoencoder: AutoencoderConfig = attrs.Factory(AutoencoderConfig)
    objective: ObjectiveConfig = attrs.Factory(ObjectiveConfig)
    weighting: WeightingConfig = attrs.Factory(WeightingConfig)
    noise: NoiseConfig = attrs.Factory(NoiseConfig)
    optimizer: OptimizerConfig = attrs.Factory(OptimizerConfig)
    lr: LRConfig = attrs.Factory(LRConfig)
    batch: int = attrs.field(default=64, metadata=bound(AT_LEAST_ONE))
    # micro-batch per process; batch / (world * batch_per_gpu) accumulation rounds
    batch_per_gpu: int | None = attrs.field(default=None, metadata=bound(AT_LEAST_ONE))
    duration: Duration = attrs.field(default=Duration(256 * 1024), metadata=bound(POSITIVE))
    ema: EMAConfig = attrs.Factory(EMAConfig)
    checkpoint: CheckpointConfig = attrs.Factory(CheckpointConfig)
    sample: SampleConfig = attrs.Factory(SampleConfig)
    conditioning: ConditioningConfig = attrs.Factory(ConditioningConfig)
    log: LogConfig = attrs.Factory(LogConfig)
    seed: int = attrs.field(default=0, metadata=bound(SEED))


for _cls in (DataConfig, AutoencoderConfig, WeightingConfig, NoiseConfig, OptimizerConfig, LRConfig, EMAConfig,
             CheckpointConfig, SampleConfig, ConditioningConfig, LogConfig, Recipe):
    attrs.resolve_types(_cls, globals())


# The built-in recipe used when neither the spec nor --recipe names one. recipes/dit_digits.yaml is this text.
DEFAULT_RECIPE_YAML = """\
# Tiny DiT on the built-in digits (16x16, 10 classes). On 2 CPU cores (~250 img/s) the 64Ki grid (~5 min)
# already shows recognisable digits; the run ends at 128Ki images (~9 min).
data:       {name: digits, split: train, resolution: 16}   # the last 297 digits: eval's held-out reference
objective:  {kind: ddpm_eps}
weighting:  {kind: min_snr, gamma: 5}
noise:      {kind: uniform}
optimizer:  {kind: adamw, lr: 1.0e-3, betas: [0.9, 0.99], weight_decay: 0, grad_clip: 1.0}
lr:         {kind: warmup, warmup: 2Ki}
batch:      64
duration:   128Ki                 # images (2048 steps of 64); '2000 steps' also works
ema:        {kind: power, sigma_rel: [0.05, 0.10], snapshot_every: 32Ki}
checkpoint: {every: 32Ki, minutes: 10, keep: 3}   # Ctrl-C / SIGTERM also write one before exiting
sample:     {first: 4Ki, every: 32Ki, n: 100, steps: 50, guidance: 2.0}
log:        {every: 4Ki}
seed:       0
"""
