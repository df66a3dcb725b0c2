"""Generic operations: arithmetic on wires, concatenation, linear/conv layers, activations."""
from __future__ import annotations

import attrs

from diffc.registry import ShapeError, block
from diffc.registry.shapes import channels, fmt
from diffc.registry.validators import positive

NN = "diffc.blocks.nn.core"


def _same(a, b, what):
    if tuple(a) != tuple(b):
        raise ShapeError(f"{what} needs equal shapes, got {fmt(a)} and {fmt(b)}", "b")


@block("add", inputs=("a", "b"), module=f"{NN}:Add", tags={"stateless"}, mp_form="mp_sum")
class Add:
    """Elementwise sum a + b (not magnitude-preserving: inside @mp it becomes mp_sum, EDM2 Eq. 88)."""
    def infer(self, a, b):
        _same(a, b, "add")
        return a


@block("mul", inputs=("a", "b"), module=f"{NN}:Mul", tags={"stateless", "mp"})
class Mul:
    """Elementwise product a * b (e.g. EDM2's multiplicative embedding modulation, Fig. 21)."""
    def infer(self, a, b):
        if tuple(b) == (channels(a),) or tuple(a) == tuple(b):
            return a
        raise ShapeError(f"mul needs equal shapes or a per-channel vector, got {fmt(a)} and {fmt(b)}", "b")


@block("scale", inputs=("x",), module=f"{NN}:Scale", tags={"stateless", "mp"})
class Scale:
    """Multiply by a constant: x * factor."""
    factor: float = 1.0

    def infer(self, x):
        return x


@block("cat", inputs=("a", "b"), module=f"{NN}:Cat", tags={"stateless"}, mp_form="mp_cat")
class Cat:
    """Channel concatenation [a, b] (U-Net skip connections, Ronneberger et al. 2015)."""
    def infer(self, a, b):
        if len(a) != len(b) or tuple(a[1:] if len(a) == 3 else a[:-1]) != tuple(b[1:] if len(b) == 3 else b[:-1]):
            raise ShapeError(f"cat needs equal shapes except channels, got {fmt(a)} and {fmt(b)}", "b")
        return (a[0] + b[0], *a[1:]) if len(a) == 3 else (*a[:-1], a[-1] + b[-1])


@block("linear", inputs=("x",), module=f"{NN}:Linear", mp_form="mp_linear")
class Linear:
    """Affine map y = W x + b over the last (feature) dimension."""
    out: int = attrs.field(validator=positive)
    bias: bool = True

    def infer(self, x):
        if len(x) == 3:
            raise ShapeError(f"linear acts on vectors or tokens, got an image {fmt(x)}; use conv", "x")
        return (*x[:-1], self.out)


@block("conv", inputs=("x",), module=f"{NN}:Conv", mp_form="mp_conv")
class Conv:
    """2-D convolution with 'same' padding (stride 1)."""
    out: int = attrs.field(validator=positive)
    kernel: int = attrs.field(default=3, validator=positive)
    bias: bool = True
    init_scale: float = 1.0       # 0 zero-initialises the layer (ADM's zero_module output convs)

    def infer(self, x):
        if len(x) != 3:
            raise ShapeError(f"conv needs an image [C, H, W], got {fmt(x)}", "x")
        return (self.out, x[1], x[2])


@block("silu", inputs=("x",), module=f"{NN}:SiLU", tags={"stateless"}, mp_form="mp_silu")
class SiLU:
    """SiLU activation x * sigmoid(x) (Elfwing et al. 2018)."""
    def infer(self, x):
        return x


@block("gelu", inputs=("x",), module=f"{NN}:GELU", tags={"stateless"})
class GELU:
    """GELU activation (Hendrycks & Gimpel 2016), tanh approximation as in DiT."""
    def infer(self, x):
        return x
