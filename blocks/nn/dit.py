"""Torch forms of the DiT blocks. Submodule names follow the reference code so weights import key for key."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sincos_1d(width: int, positions: torch.Tensor) -> torch.Tensor:
    """[sin(p w), cos(p w)] with w_i = 1 / 10000^(i / (width/2)) (Vaswani et al. 2017, Sec. 3.5)."""
    omega = 1.0 / 10000 ** (torch.arange(width // 2, dtype=torch.float64) / (width / 2))
    out = positions.double().reshape(-1, 1) * omega[None]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_2d(width: int, grid: int) -> torch.Tensor:
    """2-D table [grid*grid, width]: first half encodes the column, second half the row (MAE/DiT layout)."""
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.cat([sincos_1d(width // 2, cols.flatten()), sincos_1d(width // 2, rows.flatten())], dim=1).float()


class SinCosPosEmbed:
    @staticmethod
    def make(p, out_shape) -> nn.Parameter:
        table = torch.empty(1, *out_shape)
        if table.device.type != "meta":
            table.copy_(sincos_2d(p.width, p.grid)[None])
        return nn.Parameter(table, requires_grad=False)


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


def xavier_linear(layer: nn.Linear) -> nn.Linear:
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def zero_linear(layer: nn.Linear) -> nn.Linear:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class PatchEmbed(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.proj = nn.Conv2d(in_shapes["x"][0], p.width, p.patch, stride=p.patch)
        nn.init.xavier_uniform_(self.proj.weight.view(p.width, -1))
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TimestepEmbed(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.freq_dim, self.max_period, self.scale = p.freq_dim, p.max_period, p.scale
        self.mlp = nn.Sequential(nn.Linear(p.freq_dim, p.width), nn.SiLU(), nn.Linear(p.width, p.width))
        for layer in (self.mlp[0], self.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, t):
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = (t.float() * self.scale)[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if self.freq_dim % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class LabelEmbed(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.embedding_table = nn.Embedding(p.classes + 1, p.width)   # last row: the null class
        nn.init.normal_(self.embedding_table.weight, std=0.02)

    def forward(self, y):
        return self.embedding_table(y.long())


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (timm layout: qkv, proj)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = xavier_linear(nn.Linear(width, 3 * width))
        self.proj = xavier_linear(nn.Linear(width, width))

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(n, t, d))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = xavier_linear(nn.Linear(width, hidden))
        self.fc2 = xavier_linear(nn.Linear(hidden, width))

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class DiTBlock(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        width = in_shapes["x"][1]
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(width, p.heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(width, int(width * p.mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), zero_linear(nn.Linear(width, 6 * width)))

    def forward(self, x, c, route_mask=None):
        # adaLN-Zero (DiT Fig. 3); with a route mask m: h0 = m * x, out = h2 + (1 - m) * x (DTR Eq. 4),
        # the form that is exact when m = 1 (x + (h2 - h0) would round)
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=-1)
        h0 = x if route_mask is None else x * route_mask[:, None, :]
        h = h0 + gate1[:, None] * self.attn(modulate(self.norm1(h0), shift1, scale1))
        h = h + gate2[:, None] * self.mlp(modulate(self.norm2(h), shift2, scale2))
        return h if route_mask is None else h + (1 - route_mask[:, None, :]) * x


class FinalLayer(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        width = in_shapes["x"][1]
        self.norm_final = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.linear = zero_linear(nn.Linear(width, out_shapes[0][1]))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), zero_linear(nn.Linear(width, 2 * width)))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class Unpatchify(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.patch, self.channels = p.patch, p.channels

    def forward(self, x):
        n, t, _ = x.shape
        side, p, c = int(round(t ** 0.5)), self.patch, self.channels
        x = x.reshape(n, side, side, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(n, c, side * p, side * p)
