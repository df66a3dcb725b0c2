"""Torch forms of the disentangled conditioning blocks (Berrada et al., NeurIPS 2024, arXiv 2411.03177)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from diffc.blocks.nn.dit import Attention, DiTBlock, modulate, xavier_linear


# conditioning.md item 3: gamma(f) = 0 for f >= start, 1 for f <= end, (1 - cos(pi p)) / 2 in between.
def cosine_ramp(fraction: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Ramp values [..., G] for noise fractions `fraction` [..., 1] (0 clean, 1 pure noise) and G ramps."""
    progress = ((start - fraction) / (start - end)).clamp(0, 1)
    return 0.5 * (1 - torch.cos(math.pi * progress))


def noisy_replicate_pad(tokens, lengths, sigma: float, generator):
    """Fill positions >= length by cycling the real tokens, plus N(0, sigma^2) noise (Berrada et al. Sec. 3.2)."""
    n, seq, _ = tokens.shape
    pos = torch.arange(seq, device=tokens.device).expand(n, seq)
    length = lengths.clamp(min=1, max=seq).view(n, 1).to(tokens.device)
    source = torch.where(pos < length, pos, pos % length)
    padded = tokens.gather(1, source.unsqueeze(-1).expand_as(tokens))
    if sigma > 0:      # no draw at sigma = 0, so evaluation consumes no random numbers
        padded = padded + sigma * torch.randn(tokens.shape, generator=generator, device=tokens.device,
                                              dtype=tokens.dtype)
    return torch.where((pos < length).unsqueeze(-1), tokens, padded)


class ControlEmbed(nn.Module):
    # Berrada et al. Sec. 3.1: c_adaLN = e_t + sum_g gamma_g(t) e_g; e_g = MLP_g(sinusoids of group g's scalars)
    # (SDXL micro-conditioning features, [cos, sin], max period 1e4); a NaN row is dropped -> learned null_g.
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        k = in_shapes["m"][0]
        assignment = p.groups if p.groups is not None else (0,) * k
        self.members = [[i for i, g in enumerate(assignment) if g == group] for group in range(len(p.ramp_start))]
        self.scale = p.scale
        half = p.freq_dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / half), persistent=False)
        self.register_buffer("ramp_start", torch.tensor(p.ramp_start, dtype=torch.float64), persistent=False)
        self.register_buffer("ramp_end", torch.tensor(p.ramp_end, dtype=torch.float64), persistent=False)
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(len(members) * p.freq_dim, p.width), nn.SiLU(), nn.Linear(p.width, p.width))
            for members in self.members)
        for mlp in self.mlps:
            for layer in (mlp[0], mlp[2]):
                nn.init.normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        self.null = nn.Parameter(torch.randn(len(self.members), p.width) * 0.02)

    def forward(self, m, ctx):
        dropped = torch.isnan(m).any(dim=1, keepdim=True)
        values = torch.where(dropped, 0.0, m.float()) * self.scale     # no NaN reaches the MLP (or its gradient)
        args = values[..., None] * self.freqs
        features = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)            # [N, K, freq_dim]
        gamma = cosine_ramp(ctx.noise_fraction[:, None], self.ramp_start, self.ramp_end)   # [N, G]
        out = 0.0
        for g, (members, mlp) in enumerate(zip(self.members, self.mlps)):
            embed = mlp(features[:, members].flatten(1).to(mlp[0].weight.dtype))
            embed = torch.where(dropped, self.null[g], embed)
            out = out + gamma[:, g:g + 1].to(embed.dtype) * embed
        return out


class ClassTokens(nn.Module):
    # Berrada et al. Sec. 3.1: the class enters attention as `tokens` learned tokens; row `classes` is null.
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.tokens, self.width = p.tokens, p.width
        self.embedding_table = nn.Embedding(p.classes + 1, p.tokens * p.width)
        nn.init.normal_(self.embedding_table.weight, std=0.02)

    def forward(self, y):
        return self.embedding_table(y.long()).view(-1, self.tokens, self.width)


class TextEmbed(nn.Module):
    # Berrada et al. Sec. 3.2: padding after the real tokens (mask; a prefix) cycles them, plus N(0, noise^2)
    # in training only; rows without real tokens (dropped text) are left as given.
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()
        self.noise = p.noise
        self.proj = xavier_linear(nn.Linear(in_shapes["text"][1], p.width))

    def forward(self, text, mask=None):
        if mask is not None:
            lengths = mask.sum(dim=1)
            padded = noisy_replicate_pad(text, lengths, self.noise if self.training else 0.0, None)
            text = torch.where((lengths > 0)[:, None, None], padded, text)
        return self.proj(text)


class ConcatTokens(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()

    def forward(self, a, b):
        return torch.cat([a, b], dim=1)


class ContextAttention(Attention):
    """Self-attention of the image tokens whose keys/values also include context tokens (queries: image only)."""

    def forward(self, x, context):
        n, t, d = x.shape
        joint = torch.cat([x, context], dim=1)
        q, k, v = self.qkv(joint).reshape(n, joint.shape[1], 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q[:, :, :t], k, v)
        return self.proj(y.transpose(1, 2).reshape(n, t, d))


class DiTCondBlock(DiTBlock):
    # Berrada et al. Sec. 3.1: adaLN-Zero driven by c (timestep + ramped control) only; the semantic tokens,
    # layer-normed (no modulation), are extra keys/values of the block's own attention (shared qkv weights).
    # They are not updated across blocks. Submodule names match DiTBlock, so DiT weights load into it.
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__(p, in_shapes, out_shapes)
        width = in_shapes["x"][1]
        self.attn = ContextAttention(width, p.heads)
        self.norm_ctx = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)

    def forward(self, x, c, ctx_tokens, route_mask=None):
        # a route mask m (DTR Eq. 4) keeps the task's channels of both the image and the context tokens
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=-1)
        h0, context = x, ctx_tokens
        if route_mask is not None:
            h0, context = x * route_mask[:, None], ctx_tokens * route_mask[:, None]
        h = h0 + gate1[:, None] * self.attn(modulate(self.norm1(h0), shift1, scale1), self.norm_ctx(context))
        h = h + gate2[:, None] * self.mlp(modulate(self.norm2(h), shift2, scale2))
        return h if route_mask is None else h + (1 - route_mask[:, None]) * x   # exact when m = 1 (DTR Eq. 4)
