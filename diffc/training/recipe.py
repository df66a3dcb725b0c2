"""The training recipe: attrs classes with explicit defaults, loaded from YAML by `diffc.training.recipe_loader`.

Durations and intervals are counted in images (EDM2 style). In YAML they are written as an integer number of
images, with a binary suffix (`16Ki` = 16*1024 images, `2Mi`), a decimal one (`200k` images, `1M`), or in
optimiser steps (`500 steps`, `10k steps`), which are converted with the global batch size.
"""
from __future__ import annotations

import re

import attrs

from diffc.parameterizations import ObjectiveConfig

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
    resolution: int = attrs.field(default=16, metadata={"min": 1})
    hflip: float = attrs.field(default=0.0, metadata={"range": (0.0, 1.0)})        # probability, recorded as control
    crop_scale: float = attrs.field(default=1.0, metadata={"range": (0.05, 1.0)})  # min random-crop area fraction
    latent_scale: float = 1.0                 # multiplies precomputed latents (e.g. 0.18215)


@attrs.define
class WeightingConfig:
    kind: str = attrs.field(default="none", metadata=_choice("none", "min_snr", "p2", "ant_uw"))
    gamma: float = 5.0                        # Min-SNR clip / P2 exponent
    k: float = 1.0                            # P2 offset
    intervals: int = attrs.field(default=8, metadata={"min": 1})   # ANT-UW intervals
    lr: float = attrs.field(default=0.025, metadata={"min": 0.0})  # ANT-UW optimiser group learning rate


@attrs.define
class NoiseConfig:
    kind: str = attrs.field(default="uniform", metadata=_choice("uniform", "lognormal", "logit_normal", "stage_aware"))
    mean: float = -0.4                        # log-normal P_mean (ln sigma) / logit-normal location
    std: float = attrs.field(default=1.0, metadata={"min": 1e-6})
    stage_weights: list[float] | None = None  # stage-aware: relative probability of each stage (None: equal)


@attrs.define
class OptimizerConfig:
    kind: str = attrs.field(default="adamw", metadata=_choice("adamw", "adam"))
    lr: float = attrs.field(default=1e-3, metadata={"min": 0.0})
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    weight_decay: float = attrs.field(default=0.0, metadata={"min": 0.0})
    grad_clip: float | None = 1.0             # max global grad norm; null: off
    nonfinite: str = attrs.field(default="skip", metadata=_choice("skip", "zero"))  # non-finite grads: skip step / zero them


@attrs.define
class LRConfig:
    kind: str = attrs.field(default="constant", metadata=_choice("constant", "warmup", "cosine", "inv_sqrt"))
    warmup: Duration = Duration(0)            # linear ramp from 0
    min_lr: float = 0.0                       # cosine floor
    ref_batches: int = attrs.field(default=70000, metadata={"min": 1})  # inv_sqrt: t_ref in optimiser steps


@attrs.define
class EMAConfig:
    kind: str = attrs.field(default="power", metadata=_choice("none", "classic", "power"))
    decay: float = attrs.field(default=0.999, metadata={"range": (0.0, 1.0)})  # classic, per step
    sigma_rel: list[float] = attrs.Factory(lambda: [0.05, 0.10])    # power: profiles tracked at once
    snapshot_every: Duration | None = None    # power: post-hoc EMA snapshots; null: no snapshots


@attrs.define
class CheckpointConfig:
    every: Duration = Duration(32 * 1024)
    minutes: float | None = attrs.field(default=10.0, metadata={"min": 0.01})  # also every N minutes; null: off
    keep: int = attrs.field(default=3, metadata={"min": 1})


@attrs.define
class SampleConfig:
    every: Duration | None = Duration(64 * 1024)  # null: only at the end
    first: Duration | None = Duration(4 * 1024)  # an early grid at this point as well; null: none
    n: int = attrs.field(default=64, metadata={"min": 1})
    steps: int = attrs.field(default=50, metadata={"min": 1})
    guidance: float = 1.0
    ema: str | None = "auto"                  # EMA profile for the grid; auto: the first one; null: raw weights
    seed: int = 0


@attrs.define
class ConditioningConfig:
    label_dropout: float | None = None        # None: each condition's @drop from the spec
    control_dropout: float | None = None
    text_dropout: float | None = None
    text_pad_noise: float = attrs.field(default=0.01, metadata={"min": 0.0})  # noisy replicate padding sigma


@attrs.define
class LogConfig:
    every: Duration = Duration(4 * 1024)
    tensorboard: bool = True


@attrs.define
class Recipe:
    data: DataConfig = attrs.Factory(DataConfig)
    objective: ObjectiveConfig = attrs.Factory(ObjectiveConfig)
    weighting: WeightingConfig = attrs.Factory(WeightingConfig)
    noise: NoiseConfig = attrs.Factory(NoiseConfig)
    optimizer: OptimizerConfig = attrs.Factory(OptimizerConfig)
    lr: LRConfig = attrs.Factory(LRConfig)
    batch: int = attrs.field(default=64, metadata={"min": 1})
    batch_per_gpu: int | None = None          # micro-batch per process; batch / (world * batch_per_gpu) accumulation rounds
    duration: Duration = Duration(256 * 1024)
    ema: EMAConfig = attrs.Factory(EMAConfig)
    checkpoint: CheckpointConfig = attrs.Factory(CheckpointConfig)
    sample: SampleConfig = attrs.Factory(SampleConfig)
    conditioning: ConditioningConfig = attrs.Factory(ConditioningConfig)
    log: LogConfig = attrs.Factory(LogConfig)
    seed: int = 0


for _cls in (DataConfig, WeightingConfig, NoiseConfig, OptimizerConfig, LRConfig, EMAConfig,
             CheckpointConfig, SampleConfig, ConditioningConfig, LogConfig, Recipe):
    attrs.resolve_types(_cls, globals())


# The built-in recipe used when neither the spec nor --recipe names one. recipes/dit_digits.yaml is this text.
DEFAULT_RECIPE_YAML = """\
# Tiny DiT on the built-in digits (16x16, 10 classes). On 2 CPU cores (~250 img/s) the 64Ki grid (~5 min)
# already shows recognisable digits; the run ends at 128Ki images (~9 min).
data:       {name: digits, resolution: 16}
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
