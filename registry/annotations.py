"""The built-in annotations: the four methods plus condition dropout. Lowering lives in diffc.compiler."""
from __future__ import annotations

import attrs

from diffc.registry.core import Link, annotation
from diffc.registry.validators import non_negative, positive, unit_interval


def _window(inst, attribute, value):
    if not 0 < value <= 1:
        raise ValueError(f"'window' (beta, the active channel fraction) must be in (0, 1], got {value}")


@annotation("route", targets={"model", "block", "repeat", "region"}, positional=("window", "weight"))
class Route:
    """Denoising Task Routing (Park et al., ICLR 2024, Eq. 4-5): sliding-window channel masks per timestep."""
    window: float = attrs.field(default=0.8, validator=_window)       # beta: fraction of active channels
    weight: float = attrs.field(default=4.0, validator=positive)      # alpha: task-weight exponent
    tasks: int = attrs.field(default=1000, validator=positive)        # T rows of the mask table
    attention: bool = False                                           # route U-Net attention blocks too [unverified]


@annotation("stage", targets={"region"}, positional=("k",))
class Stage:
    """Multi-stage framework (Zhang et al., CVPR 2024, Sec. 4): stage-specific decoders split by noise level."""
    k: int | None = attrs.field(default=None, validator=positive)     # number of stages
    boundaries: list[float] | None = None                             # K-1 log-SNR values, low to high noise
    widths: list[int] | None = None                                   # decoder width per stage (low noise first)


@annotation("sync", targets={"model", "repeat", "region"}, variadic="pairs")
class Sync:
    """LayerSync (Haghighi et al., 2025, Eq. 3): negative cosine between a layer and a stop-gradient deeper layer."""
    pairs: list[Link] = attrs.Factory(list)                           # student -> teacher (1-based in a repeat)
    weight: float = attrs.field(default=0.2, validator=non_negative)  # lambda


@annotation("mp", targets={"model", "block", "repeat", "region"}, positional=("strict",))
class MagnitudePreserving:
    """EDM2 magnitude-preserving layers (Karras et al., CVPR 2024, Sec. 3, Eq. 47-103)."""
    strict: bool = False      # true: reject non-MP blocks instead of substituting their MP forms


@annotation("drop", targets={"input"}, positional=("p",))
class Drop:
    """Condition dropout for classifier-free guidance (Ho & Salimans 2022, Sec. 3.2)."""
    p: float = attrs.field(default=0.1, validator=unit_interval)


@annotation("control", targets={"input"})
class Control:
    """Mark a condition as control metadata (Berrada et al., NeurIPS 2024, Sec. 3.1), guided apart from semantics."""


@annotation("tap", targets={"block"}, positional=("name",))
class Tap:
    """Expose a node's output in the model's aux dict (e.g. EDM2's log-variance u(sigma), EDM2 Eq. 21)."""
    name: str
