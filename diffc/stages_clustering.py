"""Stage boundaries by optimal-denoiser clustering (Zhang et al., CVPR 2024, Sec. 4.2, Alg. 1).

The empirical optimal eps-denoiser over a training set {y_i}, for x_t = s_t (y + sigma_t eps), is

    eps*_t(x) = (x / s_t - sum_i w_i(x) y_i) / sigma_t,   w = softmax_i(-||x / s_t - y_i||^2 / (2 sigma_t^2)).

Two denoisers agree on a pixel when their outputs differ by at most eta. Monte Carlo triples
(y_k, eps_k, t_k ~ U[0, 1]) give S0_k, the agreement of eps*_{t_k}(x_k) with the clean-end denoiser eps*_0 = eps
(the true noise), and S1_k, with the pure-noise-end form eps*_1(x) = x / (s sigma) - ybar / sigma (posterior =
data mean), both at the sample's own (s, sigma).
t1 is the largest tau whose running mean of S0 over t_k <= tau stays >= alpha, t2 the smallest tau whose
mean of S1 over t_k >= tau is >= alpha. K = 3 gives [t1, t2]; other K space boundaries evenly in log-SNR
between them, and overlapping ends (t2 < t1) make [t2, t1] the middle stage (our extensions [unverified]).
"""
from __future__ import annotations

import math
from pathlib import Path

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from diffc.errors import UserError

T_MIN = 1e-3                        # smallest t drawn: t = 0 has sigma = 0 (the denoiser is undefined)
VP_BETA = (0.1, 20.0)               # VP-SDE beta range of the paper's CIFAR-10 result
EDM_SIGMA = (0.002, 80.0)           # EDM sigma range; t maps log-linearly onto it


@attrs.frozen
class Schedule:
    """t in [0, 1] -> (s_t, sigma_t) with x_t = s_t (y + sigma_t eps)."""
    kind: str                       # "vp" | "edm"

    def scale_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = t.double()
        if self.kind == "vp":       # log alpha_t = -t^2 (b1 - b0) / 4 - t b0 / 2 (Song et al. 2021, VP-SDE)
            b0, b1 = VP_BETA
            log_alpha = -0.25 * t * t * (b1 - b0) - 0.5 * t * b0
            return torch.exp(log_alpha), torch.sqrt(torch.expm1(-2 * log_alpha))
        lo, hi = (math.log(s) for s in EDM_SIGMA)
        return torch.ones_like(t), torch.exp(lo + t * (hi - lo))

    def logsnr(self, t: torch.Tensor) -> torch.Tensor:
        return -2 * torch.log(self.scale_sigma(t)[1])


@attrs.frozen
class Clustering:
    t: np.ndarray                   # [M] sorted sample times
    s0: np.ndarray                  # [M] agreement with the clean-end denoiser
    s1: np.ndarray                  # [M] agreement with the pure-noise-end denoiser
    boundaries_t: list[float]       # K-1 boundaries, increasing t (low to high noise)
    schedule: Schedule
    overlap: bool = False           # the S0 and S1 ends overlapped (t1 > t2): their overlap is the middle stage

    def boundaries_sigma(self) -> list[float]:
        return self.schedule.scale_sigma(torch.tensor(self.boundaries_t))[1].tolist()

    def boundaries_logsnr(self) -> list[float]:
        return self.schedule.logsnr(torch.tensor(self.boundaries_t)).tolist()


def load_data(source: str) -> torch.Tensor:
    """`digits` (scikit-learn, bilinear to 16x16, [-1, 1]) or an .npz/.npy array [N, ...]; returns [N, D] float64."""
    if source == "digits":
        from sklearn.datasets import load_digits
        images = torch.tensor(load_digits().images, dtype=torch.float32)[:, None] / 8 - 1
        images = F.interpolate(images, size=(16, 16), mode="bilinear", align_corners=False)
        return images.flatten(1).double()
    path = Path(source)
    if not path.is_file():
        raise UserError("data file not found", file=source, help="give `digits` or an .npz/.npy array file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.ndarray):
            key = next((k for k in ("images", "x", "arr_0") if k in loaded.files), None)
            if key is None:
                raise UserError(f"no 'images' (or 'x', 'arr_0') array; found {sorted(loaded.files)}", file=source)
            loaded = loaded[key]
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read array file: {exc}", file=source) from None
    if loaded.ndim < 2 or loaded.shape[0] < 2:
        raise UserError(f"expected an array [N, ...] with N >= 2 samples, got shape {loaded.shape}", file=source)
    data = torch.from_numpy(np.ascontiguousarray(loaded)).double().flatten(1)
    return data / 127.5 - 1 if loaded.dtype == np.uint8 else data


def optimal_eps(x: torch.Tensor, scale: torch.Tensor, sigma: torch.Tensor, data: torch.Tensor,
                chunk: int = 512) -> torch.Tensor:
    """eps*_t(x) of Alg. 1 for rows x [M, D] with per-row (s_t, sigma_t); log-sum-exp softmax over data [N, D]."""
    out = torch.empty_like(x)
    data_sq = (data * data).sum(1)
    for start in range(0, x.shape[0], chunk):
        z = x[start:start + chunk] / scale[start:start + chunk, None]
        var = sigma[start:start + chunk, None] ** 2
        dist = (z * z).sum(1, keepdim=True) - 2 * z @ data.T + data_sq[None]
        weights = torch.softmax(-dist / (2 * var), dim=1)
        out[start:start + chunk] = (z - weights @ data) / sigma[start:start + chunk, None]
    return out


def agreement(a: torch.Tensor, b: torch.Tensor, eta: float) -> torch.Tensor:
    """D of Alg. 1: the fraction of pixels where two denoiser outputs differ by at most eta."""
    return ((a - b).abs() <= eta).double().mean(1)


def first_boundaries(t: np.ndarray, s0: np.ndarray, s1: np.ndarray, alpha: float) -> tuple[float, float]:
    """t1 = max tau with mean{S0 : t <= tau} >= alpha, t2 = min tau with mean{S1 : t >= tau} >= alpha (t sorted)."""
    count = np.arange(1, len(t) + 1)
    head = np.cumsum(s0) / count
    tail = (np.cumsum(s1[::-1]) / count)[::-1]
    ok_head, ok_tail = np.nonzero(head >= alpha)[0], np.nonzero(tail >= alpha)[0]
    t1 = float(t[ok_head[-1]]) if len(ok_head) else float(t[0])
    t2 = float(t[ok_tail[0]]) if len(ok_tail) else float(t[-1])
    return t1, t2


def cluster(data: torch.Tensor, k: int = 3, alpha: float = 0.9, eta: float = 2 / 255, samples: int = 2000,
            schedule: str = "vp", seed: int = 0) -> Clustering:
    """Alg. 1 (Zhang et al. 2024, Sec. 4.2): Monte Carlo agreement curves S0, S1 and the K-1 boundaries."""
    if k < 2:
        raise UserError(f"--k must be at least 2 stages, got {k}")
    if not 0 < alpha <= 1:
        raise UserError(f"--alpha must be in (0, 1], got {alpha}")
    sched = Schedule(schedule)
    gen = torch.Generator().manual_seed(seed)
    y = data[torch.randint(data.shape[0], (samples,), generator=gen)]
    eps = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    t = torch.sort(T_MIN + (1 - T_MIN) * torch.rand(samples, generator=gen, dtype=torch.float64)).values
    scale, sigma = sched.scale_sigma(t)
    predicted = optimal_eps(scale[:, None] * (y + sigma[:, None] * eps), scale, sigma, data)
    noise_end = eps + (y - data.mean(0)) / sigma[:, None]       # x / (s sigma) - ybar / sigma
    s0, s1 = agreement(predicted, eps, eta).numpy(), agreement(predicted, noise_end, eta).numpy()
    t1, t2 = first_boundaries(t.numpy(), s0, s1, alpha)
    overlap = t2 <= t1          # both ends agree in [t2, t1]: that overlap becomes the middle stage
    if overlap:
        t1, t2 = t2, t1
    return Clustering(t.numpy(), s0, s1, spread(t1, t2, k, sched), sched, overlap)


def spread(t1: float, t2: float, k: int, sched: Schedule) -> list[float]:
    """K-1 boundaries in t: [t1, t2] for K = 3, else evenly spaced log-SNR from t1 to t2 (K = 2: the middle)."""
    if k == 3:
        return [t1, t2]
    lo, hi = sched.logsnr(torch.tensor([t1, t2], dtype=torch.float64)).tolist()
    targets = [0.5 * (lo + hi)] if k == 2 else np.linspace(lo, hi, k - 1).tolist()
    grid = torch.linspace(T_MIN, 1, 100001, dtype=torch.float64)
    falling = -sched.logsnr(grid)            # log-SNR decreases in t, so -log-SNR is sorted
    index = torch.searchsorted(falling, -torch.tensor(targets, dtype=torch.float64)).clamp(max=len(grid) - 1)
    return grid[index].tolist()
