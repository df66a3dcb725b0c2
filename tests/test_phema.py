"""EMA and power-function EMA updates against their formulas; post-hoc reconstruction against a tracked profile."""
import math

import numpy as np
import pytest
import torch

from diffc.errors import UserError
from diffc.training.phema import (PowerEMA, exp_to_std, power_function_correlation, reconstruct, solve_posthoc_coefficients,
                         std_to_exp, write_reconstruction)
from diffc.training.ema import ClassicEMA


class Scalar(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))


def test_exp_std_round_trip_and_reference_values():
    assert std_to_exp(0.05) == pytest.approx(16.97, abs=0.01)
    assert std_to_exp(0.10) == pytest.approx(6.94, abs=0.01)
    gammas = np.array([0.5, 3.0, 16.97, 96.99])
    assert np.allclose(std_to_exp(exp_to_std(gammas)), gammas)
    with pytest.raises(ValueError):
        std_to_exp(0.3)


def test_profile_std_matches_its_definition():
    gamma = 6.94
    tau = np.linspace(0, 1, 200001)
    p = (gamma + 1) * tau ** gamma
    mean = np.trapezoid(tau * p, tau)
    std = math.sqrt(np.trapezoid((tau - mean) ** 2 * p, tau))
    assert exp_to_std(gamma) == pytest.approx(std, rel=1e-5)


@pytest.mark.parametrize("a,b", [((1000.0, 0.05), (600.0, 0.10)), ((300.0, 0.12), (900.0, 0.03)),
                                 ((500.0, 0.07), (500.0, 0.07))])
def test_correlation_matches_numerical_integration(a, b):
    def profile(t_end, std, tau):
        g = float(std_to_exp(std))
        return np.where(tau <= t_end, (g + 1) * tau ** g / t_end ** (g + 1), 0.0)
    tau = np.linspace(0, max(a[0], b[0]), 400001)
    numeric = np.trapezoid(profile(*a, tau) * profile(*b, tau), tau)
    assert power_function_correlation(a[0], a[1], b[0], b[1]) == pytest.approx(numeric, rel=1e-4)


def test_solve_coefficients_sum_to_one_and_reproduce_inputs():
    coefs = solve_posthoc_coefficients([100, 200, 100, 200], [0.05, 0.05, 0.1, 0.1], [200], [0.1])
    assert coefs.sum() == pytest.approx(1.0)
    assert coefs[:, 0] == pytest.approx([0, 0, 0, 1], abs=1e-6)


def test_classic_ema_update_formula():
    module = Scalar()
    ema = ClassicEMA(module, decay=0.9)
    expected = torch.zeros(3)
    for step in range(1, 4):
        with torch.no_grad():
            module.w.fill_(float(step))
            module.count.fill_(step)
        ema.update(module, step * 8, 8)
        expected = 0.9 * expected + 0.1 * step
    assert torch.allclose(ema.profiles["ema"]["w"], expected)
    assert int(ema.profiles["ema"]["count"]) == 3


def test_power_ema_update_formula():
    module = Scalar()
    ema = PowerEMA(module, [0.05, 0.10])
    gamma = float(std_to_exp(0.10))
    expected, batch = None, 16
    for step in range(1, 6):
        with torch.no_grad():
            module.w.fill_(float(step) ** 2)
        nimg = step * batch
        ema.update(module, nimg, batch)
        beta = (1 - batch / nimg) ** (gamma + 1)
        expected = step ** 2 if expected is None else beta * expected + (1 - beta) * step ** 2
    assert step == 5 and torch.allclose(ema.profiles["ema-0.100"]["w"], torch.full((3,), float(expected)))


def _trajectory_run(run_dir, stds, steps=400, batch=8, every=40):
    module = Scalar()
    ema = PowerEMA(module, stds)
    for step in range(1, steps + 1):
        with torch.no_grad():
            module.w.copy_(torch.tensor([math.sin(step / 50), math.cos(step / 90), step / steps]))
        ema.update(module, step * batch, batch)
        if step % every == 0:
            ema.save_snapshots(run_dir, step * batch, {"spec_text": "toy", "spec_hash": "0", "model_name": "Toy",
                                                       "recipe": {"objective": {"kind": "ddpm_eps"}}})
    return ema


def test_reconstruction_matches_a_directly_tracked_profile(tmp_path):
    ema = _trajectory_run(tmp_path, [0.05, 0.08, 0.15])
    tracked = ema.profiles["ema-0.080"]["w"]
    for path in (tmp_path / "phema").glob("phema-*-0.080.pt"):
        path.unlink()                                  # reconstruct 0.08 from the 0.05 and 0.15 snapshots only
    (std, state), = reconstruct(tmp_path, [0.08])
    assert std == 0.08
    assert torch.allclose(state["w"], tracked, atol=2e-3), (state["w"], tracked)
    assert not torch.allclose(state["w"], ema.profiles["ema-0.050"]["w"], atol=2e-3)


def test_reconstruction_errors_and_written_checkpoint(tmp_path):
    with pytest.raises(UserError, match="no post-hoc EMA snapshots"):
        reconstruct(tmp_path, [0.1])
    _trajectory_run(tmp_path, [0.05, 0.10], steps=80)
    with pytest.raises(UserError, match="snapshot times are"):
        reconstruct(tmp_path, [0.1], nimg=123)
    with pytest.raises(UserError, match="sigma_rel must lie"):
        reconstruct(tmp_path, [0.5])
    path = write_reconstruction(tmp_path, [0.07, 0.09], tmp_path / "out.pt")
    data = torch.load(path, weights_only=True)
    assert sorted(data["ema"]) == ["phema-0.070", "phema-0.090"] and data["nimg"] == 640
