"""Sample grids during training (diffc.sampling's deterministic samplers, few steps) and the loss curve."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from diffc.sampling.defaults import PREVIEW_SAMPLER


@torch.no_grad()
def write_preview(module, objective, n: int, steps: int, guidance: float, seed: int, path: Path, device,
                  decoder=None, sampler: str | None = None) -> None:
    """A grid of n samples through diffc.sampling (seeds seed..seed+n-1, labels cycling 0..K-1) with `sampler`
    (default: PREVIEW_SAMPLER of the family); a latent model's samples decoded by `decoder`
    (diffc.autoencoder.LatentDecoder)."""
    from diffc.sampling.generate import SamplerConfig, sample_pixels, to_uint8
    from diffc.sampling.images import grid_image
    from diffc.checkpoints import InferenceBundle
    interface = objective.interface
    label = next((c for c in interface.conditions if c.kind == "label"), None)
    labels = [i % label.classes for i in range(n)] if label is not None else None
    config = SamplerConfig(sampler=sampler or PREVIEW_SAMPLER[objective.family], steps=steps,
                           guidance=guidance if label is not None else 1.0)
    bundle = InferenceBundle(module, interface, objective, {}, {}, decoder=decoder)
    images = to_uint8(sample_pixels(bundle, list(range(seed, seed + n)), config, labels, device))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_image(images.permute(0, 2, 3, 1).cpu().numpy(), min_size=256).save(path)


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
        ax.plot(nimg, [np.nan if r.get(key) is None else r[key] for r in records], label=key)   # null: non-finite
    ax.set_xlabel("images")
    ax.set_ylabel("loss")
    if all((r.get("loss") or 0) > 0 for r in records):
        ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
