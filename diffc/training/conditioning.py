"""Turn a data batch into the model's `cond` dict, with independent dropout per condition (for guidance).

label -> index, `classes` (the null class) when dropped; control -> metadata rows, NaN when dropped;
text -> embeddings with noisy replicate padding (Berrada et al. 2024, Sec. 3) and a `.mask`, zeros when dropped.
"""
from __future__ import annotations

import torch

from diffc.blocks.nn.conditioning import noisy_replicate_pad
from diffc.errors import UserError
from diffc.interface import CONTROL_FIELDS


def check_conditions(interface, dataset) -> None:
    """Refuse a model / data pairing that cannot be conditioned, before training starts."""
    for cond in interface.conditions:
        if cond.kind == "control" and cond.dims[0] != len(CONTROL_FIELDS):
            raise UserError(f"control condition '{cond.name}' has {cond.dims[0]} values, but the data pipeline records "
                            f"{len(CONTROL_FIELDS)}: {', '.join(CONTROL_FIELDS)}")
        if cond.kind == "text" and dataset.text is None:
            raise UserError(f"the model takes text condition '{cond.name}' but the data has no 'text' array",
                            help="store embeddings as 'text' [N, L, D] (and 'text_len' [N]) in the .npz")


def build_cond(interface, cfg, batch, generator, device) -> dict:
    """cond dict for one micro-batch; the draws happen in interface order so they are reproducible."""
    n = batch.images.shape[0]
    cond = {}
    for spec in interface.conditions:
        if spec.kind == "label":
            p = spec.dropout if cfg.label_dropout is None else cfg.label_dropout
            labels = batch.labels if batch.labels is not None else torch.full((n,), spec.classes)
            drop = torch.rand(n, generator=generator) < p
            cond[spec.name] = torch.where(drop, torch.full_like(labels, spec.classes), labels).to(device)
        elif spec.kind == "control":
            p = spec.dropout if cfg.control_dropout is None else cfg.control_dropout
            drop = torch.rand(n, generator=generator) < p
            cond[spec.name] = batch.control.masked_fill(drop[:, None], float("nan")).to(device)
        elif spec.kind == "text":
            p = spec.dropout if cfg.text_dropout is None else cfg.text_dropout
            drop = torch.rand(n, generator=generator) < p
            lengths = batch.text_len if batch.text_len is not None else torch.full((n,), batch.text.shape[1])
            text = noisy_replicate_pad(batch.text, lengths, cfg.text_pad_noise, generator)
            cond[spec.name] = text.masked_fill(drop[:, None, None], 0.0).to(device)
            cond[spec.name + ".mask"] = (~drop)[:, None].expand(n, text.shape[1]).to(device)
    return cond
