"""Sample grids during training (a few deterministic steps per family) and the loss-curve plot at the end.

These are previews to watch a run; `diffc sample` (diffc.sampling) is the full sampler suite.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch


def preview_cond(interface, n: int, device, null: bool) -> dict:
    """Labels cycling 0..K-1 (or the null class), controls at 'no augmentation', text null."""
    cond = {}
    for spec in interface.conditions:
        if spec.kind == "label":
            labels = torch.arange(n, device=device) % spec.classes
            cond[spec.name] = torch.full_like(labels, spec.classes) if null else labels
        elif spec.kind == "control":
            row = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0], device=device)
            cond[spec.name] = row.expand(n, -1).clone()
        elif spec.kind == "text":
            cond[spec.name] = torch.zeros(n, *spec.dims, device=device)
            cond[spec.name + ".mask"] = torch.zeros(n, spec.dims[0], dtype=torch.bool, device=device)
    return cond


def _guided(fn, interface, x, level, n, guidance):
    """fn(cond) guided: uncond + w (cond - uncond) (Ho & Salimans 2022, Eq. 6); w = 1 is plain conditional."""
    cond = preview_cond(interface, n, x.device, null=False)
    out = fn(cond)
    if guidance == 1.0 or not any(c.kind == "label" for c in interface.conditions):
        return out
    return torch.lerp(fn(preview_cond(interface, n, x.device, null=True)), out, guidance)


@torch.no_grad()
def generate(module, objective, n: int, steps: int, guidance: float, seed: int, device) -> torch.Tensor:
    """n samples by DDIM (ddpm), Euler on Karras sigmas (edm) or Euler in t (flow)."""
    interface = objective.interface
    gen = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn((n, *interface.sample_shape), generator=gen, device=device)
    ones = torch.ones(n, device=device)
    if objective.family == "ddpm":
        grid = torch.linspace(objective.steps - 1, 0, steps, device=device).round()
        abar = objective.alphas_cumprod.to(device).float()
        for i, t in enumerate(grid):
            level = ones * t
            eps = _guided(lambda c: objective.eps_from_output(module(x, level, c)[0], x, level), interface, x, level,
                          n, guidance)
            a = abar[t.long()]
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
            a_prev = abar[grid[i + 1].long()] if i + 1 < steps else torch.tensor(1.0, device=device)
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        return x
    if objective.family == "edm":
        ramp = torch.linspace(0, 1, steps, device=device)
        sigmas = (80 ** (1 / 7) + ramp * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
        sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
        x = x * sigmas[0]
        for i in range(steps):
            level = ones * sigmas[i]
            denoised = _guided(lambda c: objective.denoise(module, x, level, c), interface, x, level, n, guidance)
            x = x + (sigmas[i + 1] - sigmas[i]) * (x - denoised) / sigmas[i]
        return x
    times = torch.linspace(0, 1, steps + 1, device=device)
    for i in range(steps):
        level = ones * times[i]
        v = _guided(lambda c: objective.velocity(module, x, level, c), interface, x, level, n, guidance)
        x = x + (times[i + 1] - times[i]) * v
    return x


def save_grid(images: torch.Tensor, path: Path) -> None:
    """[N, C, H, W] in [-1, 1] -> a square-ish PNG grid (first 3 channels; 1 channel as grey)."""
    from PIL import Image
    images = images[:, :3].float().clamp(-1, 1).add(1).mul(127.5).round().byte().cpu()
    n, c, h, w = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = torch.zeros(c, rows * (h + 1) + 1, cols * (w + 1) + 1, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        canvas[:, 1 + r * (h + 1):1 + r * (h + 1) + h, 1 + k * (w + 1):1 + k * (w + 1) + w] = images[i]
    array = canvas.permute(1, 2, 0).numpy()
    scale = max(1, 256 // canvas.shape[1])
    img = Image.fromarray(array[:, :, 0] if c == 1 else array)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)


def plot_loss_curve(stats_path: Path, out_path: Path) -> None:
    """loss against images from stats.jsonl."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    records = [json.loads(line) for line in stats_path.read_text().splitlines() if line.strip()]
    if not records:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    nimg = np.array([r["nimg"] for r in records])
    for key in [k for k in records[-1] if k.startswith("loss")]:
        ax.plot(nimg, [r.get(key, np.nan) for r in records], label=key)
    ax.set_xlabel("images")
    ax.set_ylabel("loss")
    if all(r.get("loss", 0) > 0 for r in records):
        ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
