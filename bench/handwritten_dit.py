"""A plain, hand-written DiT (dit_sit.md §2.2) used as the baseline for the compiled one in benchmarks.

Its parameter names equal the compiled DiT's (and the reference's), so the same weights load into both.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv, self.attn.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))

    def forward(self, x, c):
        s1, c1, g1, s2, c2, g2 = self.adaLN_modulation(c).chunk(6, dim=-1)
        n, t, d = x.shape
        q, k, v = self.attn.qkv(modulate(self.norm1(x), s1, c1)).reshape(n, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, d)
        x = x + g1[:, None] * self.attn.proj(a)
        h = self.mlp.fc2(F.gelu(self.mlp.fc1(modulate(self.norm2(x), s2, c2)), approximate="tanh"))
        return x + g2[:, None] * h


class HandDiT(nn.Module):
    def __init__(self, depth, width, heads, patch, size, channels, classes, out_channels):
        super().__init__()
        self.patch, self.out_channels = patch, out_channels
        grid = size // patch
        self.x_embedder = nn.Module()
        self.x_embedder.proj = nn.Conv2d(channels, width, patch, stride=patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, width), requires_grad=False)
        self.t_embedder = nn.Module()
        self.t_embedder.mlp = nn.Sequential(nn.Linear(256, width), nn.SiLU(), nn.Linear(width, width))
        self.y_embedder = nn.Module()
        self.y_embedder.embedding_table = nn.Embedding(classes + 1, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.final_layer = nn.Module()
        self.final_layer.norm_final = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_layer.linear = nn.Linear(width, patch * patch * out_channels)
        self.final_layer.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def forward(self, x, t, y):
        h = self.x_embedder.proj(x).flatten(2).transpose(1, 2) + self.pos_embed
        f = torch.exp(-math.log(10000) * torch.arange(128, device=x.device, dtype=torch.float32) / 128)
        args = t.float()[:, None] * f[None]
        c = self.t_embedder.mlp(torch.cat([torch.cos(args), torch.sin(args)], -1)) + self.y_embedder.embedding_table(y)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_layer.adaLN_modulation(c).chunk(2, dim=-1)
        h = self.final_layer.linear(modulate(self.final_layer.norm_final(h), shift, scale))
        n, tokens, _ = h.shape
        g, p, co = int(round(tokens ** 0.5)), self.patch, self.out_channels
        return h.reshape(n, g, g, p, p, co).permute(0, 5, 1, 3, 2, 4).reshape(n, co, g * p, g * p)
