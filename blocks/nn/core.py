"""Torch forms of the generic operations in diffc.blocks.core.

Stateless ones also say how generated code writes them inline (`inline(p, in_shapes, *args)` -> an
expression over the argument expressions), so a compiled forward pays no module call for `a + b`."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Add(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()

    def forward(self, a, b):
        return a + b

    @staticmethod
    def inline(p, in_shapes, a, b):
        return f"{a} + {b}"


class Mul(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.per_channel = tuple(in_shapes["b"]) != tuple(in_shapes["a"]) and len(in_shapes["a"]) == 3

    def forward(self, a, b):
        return a * b[:, :, None, None] if self.per_channel else a * b

    @staticmethod
    def inline(p, in_shapes, a, b):
        per_channel = tuple(in_shapes["b"]) != tuple(in_shapes["a"]) and len(in_shapes["a"]) == 3
        return f"{a} * {b}[:, :, None, None]" if per_channel else f"{a} * {b}"


class Scale(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.factor = p.factor

    def forward(self, x):
        return x * self.factor

    @staticmethod
    def inline(p, in_shapes, x):
        return f"{x} * {p.factor!r}" if math.isfinite(p.factor) else f"{x} * float('{p.factor}')"


class Cat(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.dim = 1 if len(in_shapes["a"]) == 3 else -1

    def forward(self, a, b):
        return torch.cat([a, b], dim=self.dim)

    @staticmethod
    def inline(p, in_shapes, a, b):
        return f"torch.cat([{a}, {b}], dim={1 if len(in_shapes['a']) == 3 else -1})"


class Linear(nn.Linear):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__(in_shapes["x"][-1], p.out, bias=p.bias)


class Conv(nn.Conv2d):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__(in_shapes["x"][0], p.out, p.kernel, padding=p.kernel // 2, bias=p.bias)
        if p.init_scale != 1.0:
            with torch.no_grad():
                self.weight.mul_(p.init_scale)
                if self.bias is not None:
                    self.bias.mul_(p.init_scale)


class SiLU(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()

    def forward(self, x):
        return F.silu(x)

    @staticmethod
    def inline(p, in_shapes, x):
        return f"F.silu({x})"


class GELU(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()

    def forward(self, x):
        return F.gelu(x, approximate="tanh")

    @staticmethod
    def inline(p, in_shapes, x):
        return f"F.gelu({x}, approximate='tanh')"
