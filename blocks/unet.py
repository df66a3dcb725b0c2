"""U-Net blocks of ADM (Dhariwal & Nichol, NeurIPS 2021) and DDPM++ (Song et al. ICLR 2021; EDM, Karras et al.
NeurIPS 2022): shape rules and signatures. Torch forms live in diffc.blocks.nn.unet."""
from __future__ import annotations

import attrs

from diffc.registry import ShapeError, block
from diffc.registry.shapes import fmt, image, vector
from diffc.registry.validators import one_of, positive, unit_interval

NN = "diffc.blocks.nn.unet"


def _groups_divide(c: int, groups: int, port: str) -> None:
    if c % groups:
        raise ShapeError(f"GroupNorm with {groups} groups needs channels divisible by {groups}, got {c}; "
                         f"pass a smaller `groups`", port)


def _resampled(h: int, w: int, resample: str, port: str) -> tuple[int, int]:
    if resample == "down":
        if h % 2 or w % 2:
            raise ShapeError(f"downsampling needs an even size, got {h}x{w}", port)
        return h // 2, w // 2
    if resample == "up":
        return h * 2, w * 2
    return h, w


@block("group_norm", inputs=("x",), module=f"{NN}:GroupNorm")
class GroupNorm:
    """Group normalisation with a learned affine (Wu & He, ECCV 2018, Eq. 1-3), the U-Net normaliser."""
    groups: int = attrs.field(default=32, validator=positive)
    eps: float = attrs.field(default=1e-5, validator=positive)

    def infer(self, x):
        c, _, _ = image(x, "x")
        _groups_divide(c, self.groups, "x")
        return x


@block("resblock", inputs=("x", "emb"), module=f"{NN}:ResBlock", tags={"routable"})
class ResBlock:
    """ADM / DDPM++ residual block: GN-SiLU-conv, embedding scale-shift (ADM Sec. 3, 'AdaGN') or add, skip."""
    out: int | None = attrs.field(default=None, validator=positive)   # output channels (none: same as x)
    groups: int = attrs.field(default=32, validator=positive)
    dropout: float = attrs.field(default=0.0, validator=unit_interval)
    scale_shift: bool = True          # ADM AdaGN: GN(h) * (1 + scale) + shift; false: h + proj(emb) (DDPM++)
    resample: str = attrs.field(default="none", validator=one_of("none", "up", "down"))
    skip_scale: float = attrs.field(default=1.0, validator=positive)   # DDPM++ uses sqrt(1/2)
    skip_proj: bool = False           # 1x1 conv on the skip even at equal width when resampling (DDPM++)
    eps: float = attrs.field(default=1e-5, validator=positive)

    def infer(self, x, emb):
        c, h, w = image(x, "x")
        vector(emb, "emb")
        _groups_divide(c, self.groups, "x")
        out = self.out or c
        _groups_divide(out, self.groups, "out")
        return (out, *_resampled(h, w, self.resample, "x"))


@block("attention_block", inputs=("x",), module=f"{NN}:AttentionBlock", tags={"routable_attention"})
class AttentionBlock:
    """Spatial self-attention with a residual, x + proj(Attn(GN(x))) (DDPM Sec. B; ADM Sec. 3, heads of 64 ch)."""
    heads: int = attrs.field(default=1, validator=positive)
    head_channels: int | None = attrs.field(default=None, validator=positive)   # set: heads = C / head_channels
    groups: int = attrs.field(default=32, validator=positive)
    skip_scale: float = attrs.field(default=1.0, validator=positive)   # DDPM++ uses sqrt(1/2)
    eps: float = attrs.field(default=1e-5, validator=positive)

    def infer(self, x):
        c, _, _ = image(x, "x")
        _groups_divide(c, self.groups, "x")
        heads = c // self.head_channels if self.head_channels else self.heads
        if self.head_channels and c % self.head_channels:
            raise ShapeError(f"{c} channels are not divisible by head_channels = {self.head_channels}", "x")
        if c % heads:
            raise ShapeError(f"{c} channels are not divisible by heads = {heads}", "x")
        return x


@block("downsample", inputs=("x",), module=f"{NN}:Downsample")
class Downsample:
    """Halve the resolution with a stride-2 3x3 conv or 2x2 average pooling (ADM `Downsample`)."""
    conv: bool = True
    out: int | None = attrs.field(default=None, validator=positive)

    def infer(self, x):
        c, h, w = image(x, "x")
        if self.out is not None and not self.conv and self.out != c:
            raise ShapeError("average pooling keeps the channel count; set conv = true to change it", "x")
        return (self.out or c, *_resampled(h, w, "down", "x"))


@block("upsample", inputs=("x",), module=f"{NN}:Upsample")
class Upsample:
    """Double the resolution by nearest-neighbour interpolation, then an optional 3x3 conv (ADM `Upsample`)."""
    conv: bool = True
    out: int | None = attrs.field(default=None, validator=positive)

    def infer(self, x):
        c, h, w = image(x, "x")
        if self.out is not None and not self.conv and self.out != c:
            raise ShapeError("nearest upsampling keeps the channel count; set conv = true to change it", "x")
        return (self.out or c, h * 2, w * 2)


@block("sigma_embed", inputs=("sigma",), module=f"{NN}:SigmaEmbed")
class SigmaEmbed:
    """EDM noise embedding: c_noise = ln(sigma)/4 (EDM Table 1), sinusoidal features, MLP Linear-SiLU-Linear-SiLU."""
    width: int = attrs.field(validator=positive)
    freq_dim: int = attrs.field(default=128, validator=positive)
    max_period: float = attrs.field(default=10000.0, validator=positive)

    def infer(self, sigma):
        if sigma != ():
            raise ShapeError(f"'sigma' must be a per-sample scalar, got {fmt(sigma)}", "sigma")
        if self.freq_dim % 2:
            raise ShapeError(f"freq_dim must be even, got {self.freq_dim}")
        return (self.width,)
