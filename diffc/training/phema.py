"""Power-function EMA and post-hoc EMA reconstruction (Karras et al. 2024, EDM2 Sec. 3 and App. C).

A power-function profile averages theta(tau) with density (gamma+1) tau^gamma / t^(gamma+1) on [0, t]; it is
named by its relative std sigma_rel. Training tracks a few profiles and saves snapshots; any other sigma_rel is
reconstructed afterwards as the least-squares combination of the snapshot profiles.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from diffc.checkpoints import CHECKPOINT_FORMAT, FIELDS, atomic_save
from diffc.errors import UserError, first_line
from diffc.training.ema import EMAProfiles, copy_state, lerp_state

SNAPSHOT_FORMAT = "diffc-phema-1"
SIGMA_REL_MAX = float(np.sqrt(1 / 12))      # gamma = 0: uniform average
_SNAPSHOT_NAME = re.compile(r"^phema-(\d{12})-(\d+\.\d{3})\.pt$")


def exp_to_std(gamma):
    """sigma_rel = sqrt((gamma+1) / ((gamma+2)^2 (gamma+3))) (EDM2 Eq. 123)."""
    gamma = np.asarray(gamma, dtype=np.float64)
    return np.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)))


def std_to_exp(std):
    """Largest real root of gamma^3 + 7 gamma^2 + (16 - s^-2) gamma + (12 - s^-2) = 0 (EDM2 Eq. 126)."""
    std = np.asarray(std, dtype=np.float64)
    out = []
    for s in std.reshape(-1):
        if not 0 < s < SIGMA_REL_MAX:
            raise ValueError(f"sigma_rel {s} outside (0, {SIGMA_REL_MAX:.4f})")
        inv = s ** -2
        roots = np.roots([1.0, 7.0, 16.0 - inv, 12.0 - inv])
        out.append(roots[np.abs(roots.imag) < 1e-9].real.max())
    return np.array(out).reshape(std.shape)


def power_function_beta(gamma, t, dt):
    """Per-step decay beta = (1 - dt/t)^(gamma+1), t the image count after the step (EDM2 Eq. 127)."""
    return (1 - dt / t) ** (gamma + 1)


def power_function_correlation(a_ofs, a_std, b_ofs, b_std):
    """<p_a, p_b> in L2(tau) of two power-function profiles ending at a_ofs and b_ofs (EDM2 Eq. 151)."""
    a_exp, b_exp = std_to_exp(a_std), std_to_exp(b_std)
    a_ofs, b_ofs = np.asarray(a_ofs, np.float64), np.asarray(b_ofs, np.float64)
    t_ratio = a_ofs / b_ofs
    t_exp = np.where(a_ofs < b_ofs, b_exp, -a_exp)
    return (a_exp + 1) * (b_exp + 1) * t_ratio ** t_exp / ((a_exp + b_exp + 1) * np.maximum(a_ofs, b_ofs))


def solve_posthoc_coefficients(in_ofs, in_std, out_ofs, out_std):
    """X = A^-1 B with A_ij = <p_i, p_j>, B_ik = <p_i, q_k>, columns normalised to sum 1 (EDM2 Alg. 3)."""
    in_ofs, in_std = np.asarray(in_ofs, np.float64), np.asarray(in_std, np.float64)
    out_ofs, out_std = np.asarray(out_ofs, np.float64), np.asarray(out_std, np.float64)
    gram = power_function_correlation(in_ofs[:, None], in_std[:, None], in_ofs[None, :], in_std[None, :])
    cross = power_function_correlation(in_ofs[:, None], in_std[:, None], out_ofs[None, :], out_std[None, :])
    coefs = np.linalg.lstsq(gram, cross, rcond=None)[0]
    return coefs / coefs.sum(axis=0, keepdims=True)


class PowerEMA(EMAProfiles):
    """Tracks several power-function EMA profiles at once; profile names are `ema-{sigma_rel:.3f}`."""

    def __init__(self, module: torch.nn.Module, stds):
        self.stds = [float(s) for s in stds]
        self.gammas = [float(g) for g in std_to_exp(self.stds)]
        self.profiles = {profile_name(s): copy_state(module) for s in self.stds}

    def update(self, module, nimg: int, batch_size: int) -> None:
        """theta_hat <- beta theta_hat + (1 - beta) theta with beta = power_function_beta (EDM2 Eq. 127)."""
        for std, gamma in zip(self.stds, self.gammas):
            beta = power_function_beta(gamma, nimg, batch_size)
            lerp_state(self.profiles[profile_name(std)], module, 1 - beta)

    def save_snapshots(self, run_dir, nimg: int, meta: dict) -> list[Path]:
        """Write RUN/phema/phema-{nimg:012d}-{std:.3f}.pt for every profile (atomic, rank 0 only)."""
        folder = Path(run_dir) / "phema"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for std, gamma in zip(self.stds, self.gammas):
            path = folder / f"phema-{nimg:012d}-{std:.3f}.pt"
            atomic_save({"format": SNAPSHOT_FORMAT, "state_dict": self.profiles[profile_name(std)], "nimg": nimg,
                         "std": std, "gamma": gamma, **meta}, path)
            paths.append(path)
        return paths


def profile_name(std: float) -> str:
    return f"ema-{std:.3f}"


def list_snapshots(run_dir) -> list[tuple[int, float, Path]]:
    """(nimg, std, path) of every snapshot in RUN/phema, sorted by nimg then std."""
    folder = Path(run_dir) / "phema"
    found = []
    for path in folder.glob("phema-*.pt") if folder.is_dir() else ():
        match = _SNAPSHOT_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), float(match.group(2)), path))
    return sorted(found)


def _load_snapshot(path: Path, like: dict | None = None) -> dict:
    """One snapshot file, checked to hold a state dict (with the keys and shapes of `like`, when given)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"cannot read post-hoc EMA snapshot ({first_line(exc)})", file=str(path),
                        help="the file is damaged (truncated?); move it aside, reconstruct from the others") from None
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise UserError("not a diffc post-hoc EMA snapshot", file=str(path))
    if not FIELDS["model"][0](data.get("state_dict")):
        raise UserError("damaged post-hoc EMA snapshot: 'state_dict' is not a dict of named tensors", file=str(path))
    if like is not None and {k: v.shape for k, v in data["state_dict"].items()} != \
            {k: v.shape for k, v in like.items()}:
        raise UserError("this snapshot's weights differ in names or shapes from the run's other snapshots",
                        file=str(path), help="snapshots of another model were copied into this run's phema/ folder")
    return data


def reconstruct(run_dir, sigma_rels, nimg: int | None = None, with_meta: bool = False):
    """Post-hoc EMA: [(std, state_dict)] for each requested sigma_rel at `nimg` (default: the latest snapshot time)."""
    snapshots = list_snapshots(run_dir)
    if not snapshots:
        raise UserError(f"no post-hoc EMA snapshots in {Path(run_dir) / 'phema'}",
                        help="train with ema: {kind: power, snapshot_every: 64Ki}")
    times = sorted({s[0] for s in snapshots})
    out_nimg = times[-1] if nimg is None else nimg
    if out_nimg not in times:
        raise UserError(f"no snapshot at {out_nimg} images; snapshot times are {times}")
    bad = [s for s in sigma_rels if not 0 < s < SIGMA_REL_MAX]
    if bad:
        raise UserError(f"sigma_rel must lie in (0, {SIGMA_REL_MAX:.4f}), got {bad}")
    inputs = [s for s in snapshots if 0 < s[0] <= out_nimg]
    coefs = solve_posthoc_coefficients([s[0] for s in inputs], [s[1] for s in inputs],
                                       [out_nimg] * len(sigma_rels), list(sigma_rels))
    results = [dict() for _ in sigma_rels]
    meta = {}
    data = None
    for row, (_, _, path) in enumerate(inputs):
        data = _load_snapshot(path, data["state_dict"] if data else None)
        meta = {k: v for k, v in data.items() if k not in ("state_dict", "std", "gamma")}
        for col, result in enumerate(results):
            for key, value in data["state_dict"].items():
                if not value.is_floating_point():
                    result[key] = value.clone()          # buffers: from the last input
                    continue
                term = value.double() * float(coefs[row, col])
                result[key] = term if key not in result else result[key] + term
    reference = data["state_dict"]
    pairs = [(float(std), {k: v.to(reference[k].dtype) for k, v in result.items()})
             for std, result in zip(sigma_rels, results)]
    return (pairs, {**meta, "nimg": out_nimg}) if with_meta else pairs


def write_reconstruction(run_dir, sigma_rels, out_path=None, nimg=None) -> Path:
    """Reconstruct profiles and write them as one checkpoint (profiles `phema-{std:.3f}`) for load_for_inference."""
    pairs, meta = reconstruct(run_dir, sigma_rels, nimg, with_meta=True)
    out_path = Path(out_path) if out_path else Path(run_dir) / f"phema-{meta['nimg']:012d}.pt"
    emas = {f"phema-{std:.3f}": state for std, state in pairs}
    atomic_save({**meta, "format": CHECKPOINT_FORMAT, "model": pairs[0][1], "ema": emas,
                 "kind": "phema-reconstruction"}, out_path)
    return out_path
