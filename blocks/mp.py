"""EDM2 magnitude-preserving blocks (Karras et al., CVPR 2024, Sec. 3 and Fig. 21): signatures and shape rules.

Every block here is tagged "mp", so it may appear inside `@mp`; conv, linear, silu, add and cat name
mp_conv, mp_linear, mp_silu, mp_sum and mp_cat as their MP forms. EDM2 has no biases anywhere.
"""
from __future__ import annotations

import attrs

from diffc.registry import ShapeError, block
from diffc.registry.shapes import fmt, image, vector
from diffc.registry.validators import non_negative, one_of, positive, unit_interval

NN = "diffc.blocks.nn.mp"


def _scalar_gain(gain) -> None:
    if gain is not None and tuple(gain) != ():
        raise ShapeError(f"'gain' must be a learned scalar (e.g. gain()), got {fmt(gain)}", "gain")


def _per_sample_scalar(x, port: str) -> None:
    if tuple(x) != ():
        raise ShapeError(f"'{port}' must be a per-sample scalar, got {fmt(x)}", port)


@block("mp_conv", inputs=("x", "gain"), optional=("gain",), module=f"{NN}:MPConv", tags={"mp"})
class MPConv:
    """MP conv, no bias: w = gain * normalize(w) / sqrt(fan_in), forced weight norm in training (EDM2 Eq. 47, 66)."""
    out: int = attrs.field(validator=positive)
    kernel: int = attrs.field(default=3, validator=positive)

    def infer(self, x, gain=None):
        _, h, w = image(x, "x")
        _scalar_gain(gain)
        return (self.out, h, w)


@block("mp_linear", inputs=("x", "gain"), optional=("gain",), module=f"{NN}:MPLinear", tags={"mp"})
class MPLinear:
    """MP fully connected layer, no bias, forced weight normalisation (EDM2 Eq. 47, 66; MPConv with kernel [])."""
    out: int = attrs.field(validator=positive)

    def infer(self, x, gain=None):
        if len(x) not in (1, 2):
            raise ShapeError(f"mp_linear acts on vectors or tokens, got {fmt(x)}; use mp_conv", "x")
        _scalar_gain(gain)
        return (*x[:-1], self.out)


@block("mp_silu", inputs=("x",), module=f"{NN}:MPSiLU", tags={"stateless", "mp"})
class MPSiLU:
    """silu(x) / 0.596, unit RMS for unit-normal input (EDM2 Eq. 81)."""
    def infer(self, x):
        return x


@block("mp_sum", inputs=("a", "b"), module=f"{NN}:MPSum", tags={"stateless", "mp"})
class MPSum:
    """((1-t) a + t b) / sqrt((1-t)^2 + t^2) (EDM2 Eq. 88)."""
    t: float = attrs.field(default=0.5, validator=unit_interval)

    def infer(self, a, b):
        if tuple(a) != tuple(b):
            raise ShapeError(f"mp_sum needs equal shapes, got {fmt(a)} and {fmt(b)}", "b")
        return a


@block("mp_cat", inputs=("a", "b"), module=f"{NN}:MPCat", tags={"stateless", "mp"})
class MPCat:
    """Channel concat with weights C (1-t)/sqrt(Na), C t/sqrt(Nb), C = sqrt((Na+Nb)/((1-t)^2+t^2)) (EDM2 Eq. 103)."""
    t: float = attrs.field(default=0.5, validator=unit_interval)

    def infer(self, a, b):
        rest_a = a[1:] if len(a) == 3 else a[:-1]
        rest_b = b[1:] if len(b) == 3 else b[:-1]
        if len(a) != len(b) or tuple(rest_a) != tuple(rest_b) or not a:
            raise ShapeError(f"mp_cat needs equal shapes except channels, got {fmt(a)} and {fmt(b)}", "b")
        return (a[0] + b[0], *a[1:]) if len(a) == 3 else (*a[:-1], a[-1] + b[-1])


@block("pixel_norm", inputs=("x",), module=f"{NN}:PixelNorm", tags={"stateless", "mp"})
class PixelNorm:
    """Unit RMS across channels per position, x / (eps + |x| / sqrt(C)) (EDM2 Sec. 3, 'pixel norm')."""
    eps: float = attrs.field(default=1e-4, validator=positive)

    def infer(self, x):
        if not x:
            raise ShapeError("pixel_norm needs a channel dimension, got a per-sample scalar", "x")
        return x


@block("mp_fourier", inputs=("x",), module=f"{NN}:MPFourier", tags={"mp"})
class MPFourier:
    """sqrt(2) cos(2 pi (f x + phi)), f ~ N(0, bandwidth^2), phi ~ U(0, 1), fixed buffers (EDM2 Eq. 75)."""
    channels: int = attrs.field(validator=positive)
    bandwidth: float = attrs.field(default=1.0, validator=positive)

    def infer(self, x):
        _per_sample_scalar(x, "x")
        return (self.channels,)


@block("gain", inputs=(), module=f"{NN}:Gain", tags={"param", "mp"})
class Gain:
    """A learned scalar gain, init 0, passed to mp_conv/mp_linear at call time (EDM2 Sec. 3, Eq. 47 'g')."""
    init: float = 0.0

    def infer(self):
        return ()


@block("append_ones", inputs=("x",), module=f"{NN}:AppendOnes", tags={"stateless", "mp"})
class AppendOnes:
    """Concatenate a constant all-ones channel, which replaces biases (EDM2 Sec. 3 and Fig. 21)."""
    def infer(self, x):
        c, h, w = image(x, "x")
        return (c + 1, h, w)


@block("mp_onehot", inputs=("y",), module=f"{NN}:MPOneHot", tags={"stateless", "mp"})
class MPOneHot:
    """Class index -> one-hot * sqrt(classes) (unit RMS); the null class `classes` -> zeros (EDM2 Fig. 21)."""
    classes: int = attrs.field(validator=positive)

    def infer(self, y):
        _per_sample_scalar(y, "y")
        return (self.classes,)


@block("edm2_noise_cond", inputs=("sigma",), module=f"{NN}:NoiseCond", tags={"stateless", "mp"})
class NoiseCond:
    """c_noise = ln(sigma) / 4: the network receives raw sigma and conditions on c_noise (EDM2 Eq. 7)."""
    def infer(self, sigma):
        _per_sample_scalar(sigma, "sigma")
        return ()


@block("to_scalar", inputs=("x",), module=f"{NN}:ToScalar", tags={"stateless", "mp"})
class ToScalar:
    """A width-1 vector [1] as a per-sample scalar [] (EDM2's log-variance u(sigma), Eq. 21)."""
    def infer(self, x):
        if tuple(x) != (1,):
            raise ShapeError(f"to_scalar needs a width-1 vector [1], got {fmt(x)}", "x")
        return ()


@block("edm2_block", inputs=("x", "emb"), module=f"{NN}:EDM2Block", tags={"mp"})
class EDM2Block:
    """EDM2 U-Net block: MP residual convs, embedding gain, cosine attention, mp_sum, clipping (EDM2 Fig. 21)."""
    out: int = attrs.field(validator=positive)
    flavor: str = attrs.field(default="enc", validator=one_of("enc", "dec"))
    resample: str = attrs.field(default="keep", validator=one_of("keep", "up", "down"))
    attention: bool = False
    channels_per_head: int = attrs.field(default=64, validator=positive)
    dropout: float = attrs.field(default=0.0, validator=unit_interval)
    res_balance: float = attrs.field(default=0.3, validator=unit_interval)
    attn_balance: float = attrs.field(default=0.3, validator=unit_interval)
    clip_act: float | None = attrs.field(default=256.0, validator=non_negative)

    def infer(self, x, emb):
        _, h, w = image(x, "x")
        vector(emb, "emb")
        if self.resample == "down":
            if h % 2 or w % 2:
                raise ShapeError(f"resample = \"down\" needs an even size, got {h}x{w}", "x")
            h, w = h // 2, w // 2
        elif self.resample == "up":
            h, w = h * 2, w * 2
        if self.attention and self.out % self.channels_per_head:
            raise ShapeError(f"attention needs out = {self.out} divisible by channels_per_head = "
                             f"{self.channels_per_head}")
        return (self.out, h, w)
