"""Torch forms of the EDM2 magnitude-preserving blocks (diffc.blocks.mp), written from edm2.md Sec. 1.2-1.3.

Parameter and buffer names follow the reference network (weight, emb_gain, conv_res0, freqs ...), so its
state_dict imports key for key. "Magnitude" is the RMS over the relevant elements.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SILU_RMS = 0.596     # RMS of silu(z), z ~ N(0, 1) (EDM2 Eq. 81)


def normalize(x: torch.Tensor, dim=None, eps: float = 1e-4) -> torch.Tensor:
    """x / (eps + |x| / sqrt(n)) over `dim` (default: all but dim 0): unit RMS per slice (EDM2 Eq. 47)."""
    if dim is None:
        dim = list(range(1, x.ndim))
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    norm = torch.add(eps, norm, alpha=math.sqrt(norm.numel() / x.numel()))
    return x / norm.to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    """silu(x) / 0.596 (EDM2 Eq. 81)."""
    return F.silu(x) / SILU_RMS


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """((1-t) a + t b) / sqrt((1-t)^2 + t^2) (EDM2 Eq. 88)."""
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t ** 2)


def mp_cat(a: torch.Tensor, b: torch.Tensor, t: float, dim: int = 1) -> torch.Tensor:
    """cat([C (1-t)/sqrt(Na) a, C t/sqrt(Nb) b]), C = sqrt((Na+Nb)/((1-t)^2+t^2)) (EDM2 Eq. 103)."""
    na, nb = a.shape[dim], b.shape[dim]
    c = math.sqrt((na + nb) / ((1 - t) ** 2 + t ** 2))
    return torch.cat([a * (c * (1 - t) / math.sqrt(na)), b * (c * t / math.sqrt(nb))], dim=dim)


def cosine_attention(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    """[N, 3C, H, W] with channels laid out (head, ch, {q,k,v}) -> [N, C, H, W]; q, k, v pixel-normalised per
    head, then softmax(q k^T / sqrt(ch)) v (EDM2 Fig. 21 'cosine attention')."""
    n, c3, h, w = qkv.shape
    c = c3 // 3
    q, k, v = normalize(qkv.reshape(n, heads, c // heads, 3, h * w), dim=2).unbind(3)
    y = F.scaled_dot_product_attention(q.transpose(2, 3), k.transpose(2, 3), v.transpose(2, 3))
    return y.transpose(2, 3).reshape(n, c, h, w)


class MPWeight(nn.Module):
    """One weight [out, in, *kernel], no bias; kernel () is fully connected (EDM2 Eq. 47, 66)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *kernel))

    def effective_weight(self, gain=None) -> torch.Tensor:
        """Forced weight norm (stored rows reset to norm sqrt(fan_in) in training, Eq. 66), then the
        differentiable normalisation and gain / sqrt(fan_in) (Eq. 47): each row has L2 norm |gain|."""
        w = self.weight.float()
        if self.training:
            with torch.no_grad():
                self.weight.copy_(normalize(w))
        w = normalize(w) / math.sqrt(w[0].numel())
        return w if gain is None else w * gain

    def forward(self, x, gain=None):
        w = self.effective_weight(gain).to(x.dtype)
        if w.ndim == 2:
            return x @ w.t()
        return F.conv2d(x, w, padding=w.shape[-1] // 2)


class MPConv(MPWeight):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__(in_shapes["x"][0], p.out, (p.kernel, p.kernel))


class MPLinear(MPWeight):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__(in_shapes["x"][-1], p.out, ())


class MPSiLU(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()

    def forward(self, x):
        return mp_silu(x)


class MPSum(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.t = p.t

    def forward(self, a, b):
        return mp_sum(a, b, self.t)


class MPCat(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.t = p.t
        self.dim = 1 if len(in_shapes["a"]) == 3 else -1

    def forward(self, a, b):
        return mp_cat(a, b, self.t, self.dim)


class PixelNorm(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.eps = p.eps
        self.dim = 1 if len(in_shapes["x"]) == 3 else -1

    def forward(self, x):
        return normalize(x, dim=self.dim, eps=self.eps)


class MPFourier(nn.Module):
    """Fixed random Fourier features: buffers freqs = 2 pi N(0,1) bandwidth, phases = 2 pi U(0,1) (EDM2 Eq. 75)."""

    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.randn(p.channels) * p.bandwidth)
        self.register_buffer("phases", 2 * math.pi * torch.rand(p.channels))

    def forward(self, x):
        y = torch.outer(x.flatten().float(), self.freqs.float()) + self.phases.float()
        return (math.sqrt(2) * torch.cos(y)).to(x.dtype if x.is_floating_point() else torch.float32)


class Gain:
    @staticmethod
    def make(p, out_shape) -> nn.Parameter:
        return nn.Parameter(torch.full((), p.init))


class AppendOnes(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()

    def forward(self, x):
        return torch.cat([x, torch.ones_like(x[:, :1])], dim=1)


class MPOneHot(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.classes = p.classes

    def forward(self, y):
        onehot = F.one_hot(y.long().clamp(0, self.classes), self.classes + 1)[:, :self.classes]
        return onehot.float() * math.sqrt(self.classes)


class NoiseCond(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()

    def forward(self, sigma):
        return torch.log(sigma.float()) / 4


class ToScalar(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()

    def forward(self, x):
        return x.reshape(x.shape[0])


class EDM2Block(nn.Module):
    """The single EDM2 U-Net block (Fig. 21). Submodules in the reference's order and names."""

    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        cin, cout, cemb = in_shapes["x"][0], p.out, in_shapes["emb"][0]
        self.p = p
        self.heads = cout // p.channels_per_head if p.attention else 0
        self.emb_gain = nn.Parameter(torch.zeros(()))
        self.conv_res0 = MPWeight(cout if p.flavor == "enc" else cin, cout, (3, 3))
        self.emb_linear = MPWeight(cemb, cout, ())
        self.conv_res1 = MPWeight(cout, cout, (3, 3))
        self.conv_skip = MPWeight(cin, cout, (1, 1)) if cin != cout else None
        if self.heads:
            self.attn_qkv = MPWeight(cout, 3 * cout, (1, 1))
            self.attn_proj = MPWeight(cout, cout, (1, 1))

    def forward(self, x, emb):
        p = self.p
        if p.resample == "down":
            x = F.avg_pool2d(x, 2)                                   # 2x2 box filter, stride 2
        elif p.resample == "up":
            x = F.interpolate(x, scale_factor=2, mode="nearest")     # box filter x4, transposed stride 2
        if p.flavor == "enc":
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=1)                                  # pixel norm of the main path
        y = self.conv_res0(mp_silu(x))
        c = self.emb_linear(emb, gain=self.emb_gain) + 1             # multiplicative modulation, 1 at init
        y = mp_silu(y * c[:, :, None, None].to(y.dtype))
        if self.training and p.dropout > 0:
            y = F.dropout(y, p.dropout)
        y = self.conv_res1(y)
        if p.flavor == "dec" and self.conv_skip is not None:
            x = self.conv_skip(x)
        x = mp_sum(x, y, p.res_balance)
        if self.heads:
            y = self.attn_proj(cosine_attention(self.attn_qkv(x), self.heads))
            x = mp_sum(x, y, p.attn_balance)
        if p.clip_act is not None:
            x = x.clamp(-p.clip_act, p.clip_act)
        return x
