"""Optimiser, learning-rate schedules (functions of the image count), gradient clipping and non-finite handling."""
from __future__ import annotations

import math

import torch


def build_optimizer(cfg, module: torch.nn.Module, weighting: torch.nn.Module, weighting_lr: float):
    """Adam / AdamW with group 0 = model (scheduled lr), group 1 = loss-weighting parameters (fixed lr, no decay)."""
    groups = [{"params": [p for p in module.parameters() if p.requires_grad], "weight_decay": cfg.weight_decay,
               "lr": cfg.lr, "scheduled": True}]
    extra = [p for p in weighting.parameters() if p.requires_grad]
    if extra:
        groups.append({"params": extra, "weight_decay": 0.0, "lr": weighting_lr, "scheduled": False})
    cls = torch.optim.AdamW if cfg.kind == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def learning_rate(cfg, base_lr: float, nimg: int, batch: int, total_images: int) -> float:
    """lr at image count `nimg`: linear warm-up, then constant / cosine / inverse-sqrt (EDM2 Eq. 67)."""
    warmup = cfg.warmup.images(batch)
    ramp = min(nimg / warmup, 1.0) if warmup > 0 else 1.0
    if cfg.kind == "cosine":
        progress = min(max((nimg - warmup) / max(total_images - warmup, 1), 0.0), 1.0)
        return ramp * (cfg.min_lr + (base_lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress)))
    if cfg.kind == "inv_sqrt":
        return ramp * base_lr / math.sqrt(max(nimg / batch / cfg.ref_batches, 1.0))
    return ramp * base_lr


def set_learning_rate(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if group.get("scheduled", True):
            group["lr"] = lr


def prepare_gradients(optimizer, grad_clip: float | None, nonfinite: str) -> tuple[bool, bool, float]:
    """(take the step?, finite?, grad norm): non-finite gradients skip the step or are zeroed; clip the global norm."""
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if not params:
        return False, True, 0.0
    finite = bool(torch.stack([p.grad.isfinite().all() for p in params]).all())
    if not finite:
        if nonfinite == "skip":
            return False, False, float("nan")
        for p in params:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
    max_norm = grad_clip if grad_clip is not None else float("inf")
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return True, finite, float(norm)
