"""Torch forms of the generic operations in diffc.blocks.core."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Add(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()

    def forward(self, a, b):
        return a + b


class Mul(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.per_channel = tuple(in_shapes["b"]) != tuple(in_shapes["a"]) and len(in_shapes["a"]) == 3

    def forward(self, a, b):
        return a * b[:, :, None, None] if self.per_channel else a * b


class Scale(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.factor = p.factor

    def forward(self, x):
        return x * self.factor


class Cat(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.dim = 1 if len(in_shapes["a"]) == 3 else -1

    def forward(self, a, b):
        return torch.cat([a, b], dim=self.dim)


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


class GELU(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()

    def forward(self, x):
        return F.gelu(x, approximate="tanh")
