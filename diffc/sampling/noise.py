"""Per-sample random streams: sample i draws all of its randomness from its own seed (EDM2-style).

Because every sample owns a generator seeded with `base + i`, the images do not depend on the batch size or
on which other samples share the batch.
"""
from __future__ import annotations

import torch


class SeededNoise:
    """A stack of per-sample torch generators (EDM2 `generate_images.py`, StackedRandomGenerator)."""

    def __init__(self, seeds, device="cpu"):
        self.seeds = [int(s) for s in seeds]
        self.device = torch.device(device)
        self.generators = [torch.Generator(self.device).manual_seed(s) for s in self.seeds]

    def __len__(self) -> int:
        return len(self.seeds)

    def randn(self, shape, dtype=torch.float32) -> torch.Tensor:
        """Standard normal [N, *shape], row i from generator i."""
        return torch.stack([torch.randn(tuple(shape), generator=g, device=self.device, dtype=dtype)
                            for g in self.generators])

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return self.randn(x.shape[1:], dtype=x.dtype)

    def randint(self, high: int) -> torch.Tensor:
        """One integer in [0, high) per sample, e.g. a class label."""
        return torch.stack([torch.randint(high, (), generator=g, device=self.device) for g in self.generators])
