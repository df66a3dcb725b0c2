"""Disentangled conditioning blocks (Berrada et al., NeurIPS 2024, arXiv 2411.03177): semantic conditions
become attention tokens, control metadata drives adaLN through a noise-level cosine ramp.

"item N" is the numbered mechanism in shared/reference/conditioning.md. Section numbers follow the repo's other
citations of the paper. Several constants are unconfirmed [unverified]; each is a parameter with a documented default.
"""
from __future__ import annotations

import attrs

from diffc.registry import ShapeError, block
from diffc.registry.shapes import fmt, tokens, vector
from diffc.registry.validators import non_negative, positive

NN = "diffc.blocks.nn.conditioning"


def _ramp_bounds(inst, attribute, value):
    """Each group's ramp runs from ramp_start (gamma = 0) down to ramp_end (gamma = 1), both in [0, 1]."""
    if len(inst.ramp_start) != len(inst.ramp_end) or not inst.ramp_start:
        raise ValueError(f"'ramp_start' and 'ramp_end' need one value per control group, got "
                         f"{len(inst.ramp_start)} and {len(inst.ramp_end)}")
    for start, end in zip(inst.ramp_start, inst.ramp_end):
        if not 0 <= end < start <= 1:
            raise ValueError(f"a ramp needs 0 <= ramp_end < ramp_start <= 1 (noise fractions), got "
                             f"ramp_start = {start}, ramp_end = {end}")


def _even(inst, attribute, value):
    if value % 2:
        raise ValueError(f"'{attribute.name}' must be even ([cos, sin] halves), got {value}")


@block("control_embed", inputs=("m",), module=f"{NN}:ControlEmbed", tags={"context"})
class ControlEmbed:
    """Control metadata -> gamma(t) e_ctrl for adaLN, cosine ramp per group (Berrada et al. 2024, Sec. 3.1, item 3)."""
    width: int = attrs.field(validator=positive)
    # ramp group of each control scalar (length K, groups 0..G-1); none = one group for all scalars
    groups: tuple[int, ...] | None = None
    # per group, noise fractions (0 clean, 1 pure noise): gamma = 0 above ramp_start, 1 below ramp_end,
    # a half cosine in between. Defaults [unverified]: one ramp over the whole trajectory, gamma = cos^2(pi f / 2).
    ramp_start: tuple[float, ...] = (1.0,)
    ramp_end: tuple[float, ...] = attrs.field(default=(0.0,), validator=_ramp_bounds)
    freq_dim: int = attrs.field(default=256, validator=[positive, _even])   # sinusoidal features per scalar (SDXL)
    scale: float = 1000.0        # values are multiplied by this first; the data pipeline records fractions [unverified]

    def infer(self, m):
        (k,) = vector(m, "m")
        count = len(self.ramp_start)
        if self.groups is None:
            if count != 1:
                raise ShapeError(f"{count} ramps given but no 'groups' assigning the {k} control values to them")
            return (self.width,)
        if len(self.groups) != k:
            raise ShapeError(f"'groups' has {len(self.groups)} entries but the control input has {k} values", "m")
        if sorted(set(self.groups)) != list(range(count)):
            raise ShapeError(f"'groups' must use each of the groups 0..{count - 1} (one per ramp), got "
                             f"{fmt(self.groups)}")
        return (self.width,)


@block("class_tokens", inputs=("y",), module=f"{NN}:ClassTokens")
class ClassTokens:
    """Class label -> attention tokens, null class at index `classes` (Berrada et al. 2024, Sec. 3.1, item 1)."""
    classes: int = attrs.field(validator=positive)
    width: int = attrs.field(validator=positive)
    tokens: int = attrs.field(default=1, validator=positive)

    def infer(self, y):
        if y != ():
            raise ShapeError(f"'y' must be a per-sample class index, got {fmt(y)}", "y")
        return (self.tokens, self.width)


@block("text_embed", inputs=("text", "mask"), optional=("mask",), module=f"{NN}:TextEmbed")
class TextEmbed:
    """Text embeddings -> tokens by a linear map, noisy replicate padding (Berrada et al. 2024, Sec. 3.2, item 5)."""
    width: int = attrs.field(validator=positive)
    # std of the Gaussian noise added to replicated padding in training [unverified]; 0 = plain replication
    noise: float = attrs.field(default=0.0, validator=non_negative)

    def infer(self, text, mask=None):
        length, _ = tokens(text, "text")
        if mask is not None and tuple(mask) != (length,):
            raise ShapeError(f"'mask' must be [{length}] (True = real token), got {fmt(mask)}", "mask")
        return (length, self.width)


@block("concat_tokens", inputs=("a", "b"), module=f"{NN}:ConcatTokens", tags={"stateless"})
class ConcatTokens:
    """Token sequences [a; b] along the sequence axis, e.g. class and text tokens (Berrada et al. 2024, Sec. 3.1)."""
    def infer(self, a, b):
        ta, da = tokens(a, "a")
        tb, db = tokens(b, "b")
        if da != db:
            raise ShapeError(f"concat_tokens needs equal widths, got {da} and {db}", "b")
        return (ta + tb, da)


@block("dit_cond_block", inputs=("x", "c", "ctx_tokens"), module=f"{NN}:DiTCondBlock", tags={"routable"})
class DiTCondBlock:
    """DiT block: adaLN from c = e_t + gamma e_ctrl, semantic tokens as extra keys/values (Berrada 2024, items 1-3)."""
    heads: int = attrs.field(validator=positive)
    mlp_ratio: float = attrs.field(default=4.0, validator=positive)

    def infer(self, x, c, ctx_tokens):
        _, d = tokens(x, "x")
        (dc,) = vector(c, "c")
        _, dt = tokens(ctx_tokens, "ctx_tokens")
        if dc != d:
            raise ShapeError(f"conditioning 'c' has width {dc} but the tokens have width {d}", "c")
        if dt != d:
            raise ShapeError(f"'ctx_tokens' have width {dt} but the tokens have width {d}", "ctx_tokens")
        if d % self.heads:
            raise ShapeError(f"width {d} is not divisible by heads = {self.heads}", "x")
        return x
