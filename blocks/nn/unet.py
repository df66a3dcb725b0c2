"""Torch forms of the U-Net blocks (ADM, DDPM++). Every module accepts an empty batch (N = 0), so a
multi-stage decoder with no samples in the batch still runs and receives zero gradients."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def zero_init(layer: nn.Module) -> nn.Module:
    """ADM's zero_module: the last layer of each residual branch starts at zero."""
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def resample(x: torch.Tensor, mode: str) -> torch.Tensor:
    """ADM's parameter-free resampling inside residual blocks: 2x2 average pool or nearest 2x upsampling."""
    if mode == "down":
        return F.avg_pool2d(x, 2)
    if mode == "up":
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return x


class GroupNorm(nn.GroupNorm):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__(p.groups, in_shapes["x"][0], eps=p.eps)


class ResBlock(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        channels, out = in_shapes["x"][0], out_shapes[0][0]
        self.resample, self.scale_shift, self.skip_scale = p.resample, p.scale_shift, p.skip_scale
        self.in_norm = nn.GroupNorm(p.groups, channels, eps=p.eps)
        self.in_conv = nn.Conv2d(channels, out, 3, padding=1)
        self.emb_proj = nn.Linear(in_shapes["emb"][0], 2 * out if p.scale_shift else out)
        self.out_norm = nn.GroupNorm(p.groups, out, eps=p.eps)
        self.dropout = nn.Dropout(p.dropout)
        self.out_conv = zero_init(nn.Conv2d(out, out, 3, padding=1))
        project = out != channels or (p.skip_proj and p.resample != "none")
        self.skip = nn.Conv2d(channels, out, 1) if project else nn.Identity()

    def forward(self, x, emb, route_mask=None):
        # DTR on a U-Net (Park et al. 2024, Eq. 4): the residual branch reads m * x, the skip path reads x
        branch_in = x if route_mask is None else x * route_mask[:, :, None, None]
        h = resample(F.silu(self.in_norm(branch_in)), self.resample)
        h = self.in_conv(h)
        e = self.emb_proj(F.silu(emb))[:, :, None, None]
        if self.scale_shift:   # AdaGN (ADM Sec. 3): GroupNorm(h) * (1 + scale) + shift
            scale, shift = e.chunk(2, dim=1)
            h = self.out_norm(h) * (1 + scale) + shift
        else:                  # DDPM++: add the projected embedding, then normalise
            h = self.out_norm(h + e)
        h = self.out_conv(self.dropout(F.silu(h)))
        return (self.skip(resample(x, self.resample)) + h) * self.skip_scale


class AttentionBlock(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        channels = in_shapes["x"][0]
        self.heads = channels // p.head_channels if p.head_channels else p.heads
        self.skip_scale = p.skip_scale
        self.norm = nn.GroupNorm(p.groups, channels, eps=p.eps)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x, route_mask=None):
        # x + proj(softmax(q k^T / sqrt(d)) v) over the H*W positions (Vaswani et al. 2017, Eq. 1)
        n, c, height, width = x.shape
        branch_in = x if route_mask is None else x * route_mask[:, :, None, None]
        qkv = self.qkv(self.norm(branch_in)).reshape(n, 3, self.heads, c // self.heads, height * width)
        q, k, v = qkv.transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)
        h = h.transpose(-1, -2).reshape(n, c, height, width)
        return (x + self.proj(h)) * self.skip_scale


class Downsample(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        channels, out = in_shapes["x"][0], out_shapes[0][0]
        self.op = nn.Conv2d(channels, out, 3, stride=2, padding=1) if p.conv else nn.AvgPool2d(2)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        channels, out = in_shapes["x"][0], out_shapes[0][0]
        self.conv = nn.Conv2d(channels, out, 3, padding=1) if p.conv else None

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x if self.conv is None else self.conv(x)


class SigmaEmbed(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        half = p.freq_dim // 2
        # EDM PositionalEmbedding(endpoint=True): frequencies (1/max_period)^(i/(half-1))
        exponent = torch.arange(half, dtype=torch.float32) / max(half - 1, 1)
        self.register_buffer("freqs", torch.exp(-math.log(p.max_period) * exponent), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(p.freq_dim, p.width), nn.SiLU(), nn.Linear(p.width, p.width))

    def forward(self, sigma):
        c_noise = torch.log(sigma.float().clamp_min(1e-20)) / 4          # EDM Table 1
        args = c_noise[:, None] * self.freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))
