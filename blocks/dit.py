"""DiT / SiT blocks (Peebles & Xie, ICCV 2023; Ma et al., SiT 2024): shape rules and signatures."""
from __future__ import annotations

import attrs

from diffc.registry import ShapeError, block
from diffc.registry.shapes import fmt, image, tokens, vector
from diffc.registry.validators import positive

NN = "diffc.blocks.nn.dit"


@block("patch_embed", inputs=("x",), module=f"{NN}:PatchEmbed")
class PatchEmbed:
    """Patchify a latent into tokens with a p x p stride-p conv (DiT Sec. 3.2, 'Patchify')."""
    patch: int = attrs.field(validator=positive)
    width: int = attrs.field(validator=positive)

    def infer(self, x):
        c, h, w = image(x, "x")
        if h % self.patch or w % self.patch:
            raise ShapeError(f"patch {self.patch} does not divide the {h}x{w} input", "x")
        return ((h // self.patch) * (w // self.patch), self.width)


@block("sincos_pos_embed", inputs=(), module=f"{NN}:SinCosPosEmbed", tags={"param"})
class SinCosPosEmbed:
    """Fixed 2-D sin-cos positional embedding (MAE/DiT), stored frozen; output [grid*grid, width]."""
    grid: int = attrs.field(validator=positive)
    width: int = attrs.field(validator=positive)

    def infer(self):
        if self.width % 4:
            raise ShapeError(f"2-D sin-cos embedding needs width divisible by 4, got {self.width}")
        return (self.grid * self.grid, self.width)


@block("timestep_embed", inputs=("t",), module=f"{NN}:TimestepEmbed")
class TimestepEmbed:
    """Sinusoidal timestep features [cos, sin] then MLP Linear-SiLU-Linear (DiT Sec. 3.2; ADM Eq. 'emb')."""
    width: int = attrs.field(validator=positive)
    freq_dim: int = attrs.field(default=256, validator=positive)
    max_period: float = 10000.0
    scale: float = 1.0            # multiply t first (e.g. 1000 for continuous t as in some ports)

    def infer(self, t):
        if t != ():
            raise ShapeError(f"'t' must be a per-sample scalar, got {fmt(t)}", "t")
        return (self.width,)


@block("label_embed", inputs=("y",), module=f"{NN}:LabelEmbed")
class LabelEmbed:
    """Class embedding table with a null class at index `classes` for guidance (DiT Sec. 3.2, CFG)."""
    classes: int = attrs.field(validator=positive)
    width: int = attrs.field(validator=positive)

    def infer(self, y):
        if y != ():
            raise ShapeError(f"'y' must be a per-sample class index, got {fmt(y)}", "y")
        return (self.width,)


@block("dit_block", inputs=("x", "c"), module=f"{NN}:DiTBlock", tags={"routable"})
class DiTBlock:
    """DiT block with adaLN-Zero (Peebles & Xie 2023, Sec. 3.2 and Fig. 3): gated attention and MLP."""
    heads: int = attrs.field(validator=positive)
    mlp_ratio: float = attrs.field(default=4.0, validator=positive)

    def infer(self, x, c):
        _, d = tokens(x, "x")
        (dc,) = vector(c, "c")
        if dc != d:
            raise ShapeError(f"conditioning 'c' has width {dc} but the tokens have width {d}", "c")
        if d % self.heads:
            raise ShapeError(f"width {d} is not divisible by heads = {self.heads}", "x")
        return x


@block("final_layer", inputs=("x", "c"), module=f"{NN}:FinalLayer")
class FinalLayer:
    """DiT final layer: adaLN (shift, scale) then Linear to p*p*out per token (DiT Sec. 3.2)."""
    patch: int = attrs.field(validator=positive)
    out: int = attrs.field(validator=positive)

    def infer(self, x, c):
        t, d = tokens(x, "x")
        (dc,) = vector(c, "c")
        if dc != d:
            raise ShapeError(f"conditioning 'c' has width {dc} but the tokens have width {d}", "c")
        return (t, self.patch * self.patch * self.out)


@block("unpatchify", inputs=("x",), module=f"{NN}:Unpatchify", tags={"stateless"})
class Unpatchify:
    """Tokens [h*w, p*p*C] back to an image [C, h*p, w*p] (DiT Sec. 3.2), row-major tokens."""
    patch: int = attrs.field(validator=positive)
    channels: int = attrs.field(validator=positive)

    def infer(self, x):
        t, d = tokens(x, "x")
        side = int(round(t ** 0.5))
        if side * side != t:
            raise ShapeError(f"unpatchify needs a square token grid, got {t} tokens", "x")
        if d != self.patch * self.patch * self.channels:
            raise ShapeError(f"tokens have width {d}, expected patch^2 * channels = "
                             f"{self.patch * self.patch * self.channels}", "x")
        return (self.channels, side * self.patch, side * self.patch)
