"""Optimal-denoiser clustering of stage boundaries (Zhang et al., CVPR 2024, Alg. 1) and `diffc stages`."""
import numpy as np
import pytest
import torch

from diffc.cli import main
from diffc.errors import UserError
from diffc.stages_clustering import (Schedule, T_MIN, cluster, first_boundaries, load_data, optimal_eps)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")[:400]


def test_digits_are_16x16_in_minus_one_to_one():
    data = load_data("digits")
    assert data.shape == (1797, 256) and data.min() == -1 and data.max() <= 1


def test_optimal_eps_memorises_at_low_noise_and_matches_one_point_exactly():
    data = torch.randn(5, 12, dtype=torch.float64)
    eps = torch.randn(5, 12, dtype=torch.float64)
    scale, sigma = torch.full((5,), 0.9, dtype=torch.float64), torch.full((5,), 1e-3, dtype=torch.float64)
    torch.testing.assert_close(optimal_eps(scale[:, None] * (data + sigma[:, None] * eps), scale, sigma, data), eps)
    one = data[:1]
    x = torch.randn(3, 12, dtype=torch.float64)
    s, sig = torch.full((3,), 0.5, dtype=torch.float64), torch.full((3,), 2.0, dtype=torch.float64)
    torch.testing.assert_close(optimal_eps(x, s, sig, one), (x / 0.5 - one) / 2.0)


def test_first_boundaries_follow_the_running_means():
    t = np.linspace(0, 1, 6)
    s0 = np.array([1.0, 1.0, 0.8, 0.2, 0.0, 0.0])     # running means 1, 1, .93, .75, ...
    s1 = np.array([0.0, 0.0, 0.1, 0.9, 1.0, 1.0])     # tail means from the right 1, 1, .97, .75, ...
    assert first_boundaries(t, s0, s1, 0.9) == (t[2], t[3])


@pytest.mark.parametrize("schedule", ["vp", "edm"])
def test_boundaries_are_ordered_inside_the_range_and_curves_behave(digits, schedule):
    result = cluster(digits, k=3, alpha=0.9, samples=600, schedule=schedule)
    t1, t2 = result.boundaries_t
    assert T_MIN <= t1 < t2 <= 1
    logsnr, sigma = result.boundaries_logsnr(), result.boundaries_sigma()
    assert logsnr[0] > logsnr[1] and sigma[0] < sigma[1]
    bins = np.linspace(0, t2, 5)
    s0 = [result.s0[(result.t >= a) & (result.t < b)].mean() for a, b in zip(bins, bins[1:])]
    assert all(a >= b - 0.02 for a, b in zip(s0, s0[1:]))    # S0 falls with t up to the noise-end boundary
    assert s0[0] > s0[-1] + 0.2
    s1_low, s1_high = result.s1[result.t < t1].mean(), result.s1[result.t > t2].mean()
    assert s1_low < 0.5 < 0.9 <= s1_high                       # S1 is high only at the noise end
    assert result.s0[result.t < t1].mean() >= 0.9


def test_other_stage_counts_give_ordered_boundaries_between_the_two_ends(digits):
    three = cluster(digits, k=3, samples=600)
    five = cluster(digits, k=5, samples=600)
    assert len(five.boundaries_t) == 4 and sorted(five.boundaries_t) == five.boundaries_t
    assert five.boundaries_t[0] == pytest.approx(three.boundaries_t[0], abs=1e-3)
    assert five.boundaries_t[-1] == pytest.approx(three.boundaries_t[-1], abs=1e-3)
    (middle,) = cluster(digits, k=2, samples=600).boundaries_t
    assert three.boundaries_t[0] < middle < three.boundaries_t[1]


def test_vp_schedule_reproduces_the_paper_log_snr_of_its_boundaries():
    logsnr = Schedule("vp").logsnr(torch.tensor([0.442, 0.631], dtype=torch.float64))
    torch.testing.assert_close(logsnr, torch.tensor([-1.84, -4.0], dtype=torch.float64), atol=0.02, rtol=0)


def test_array_files_load_and_bad_input_is_a_user_error(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(20, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "small.npz", images=images)
    data = load_data(str(tmp_path / "small.npz"))
    assert data.shape == (20, 48) and data.min() >= -1 and data.max() <= 1
    with pytest.raises(UserError, match="not found"):
        load_data(str(tmp_path / "missing.npz"))
    np.savez(tmp_path / "wrong.npz", labels=np.arange(3))
    with pytest.raises(UserError, match="no 'images'"):
        load_data(str(tmp_path / "wrong.npz"))
    with pytest.raises(UserError, match="--k"):
        cluster(data, k=1)


def test_cli_prints_boundaries_and_a_spec_line(tmp_path, capsys):
    np.save(tmp_path / "digits.npy", load_data("digits")[:300].numpy())
    with pytest.raises(SystemExit) as exit_:
        main(["stages", str(tmp_path / "digits.npy"), "--samples", "400", "--eta", "2/255"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "log-SNR" in out and "@stage(boundaries = [logsnr(" in out
    with pytest.raises(SystemExit) as exit_:
        main(["stages", str(tmp_path / "nothing.npz")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "data file not found" in err and "Traceback" not in err
