"""Timing helper shared by the bench scripts: wall time of one call, synchronising CUDA when used."""
from __future__ import annotations

import time

import torch


def timed(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start
