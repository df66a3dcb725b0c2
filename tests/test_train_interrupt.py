"""No work lost to an interruption, and a run that says what it does: SIGINT/SIGTERM checkpoints, wall-clock
checkpoints, an early grid, resume messages, a loss curve that never runs backwards, the optimised loss logged."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import ROOT, run_cli  # noqa: E402
from test_train_loop import run  # noqa: E402

from diffc.errors import Interrupted
from diffc import checkpoints as ckpt
from diffc.training import loop

SPEC = ROOT / "specs" / "dit_dtr.diffspec"
LONG_RECIPE = """\
batch: 8
duration: 100000 steps
checkpoint: {every: 100000 steps, minutes: null}
sample: {every: null, first: null, n: 4, steps: 2}
log: {every: 1 steps, tensorboard: false}
"""


def _rows(run_dir):
    path = Path(run_dir) / "stats.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_ctrl_c_mid_run_writes_a_checkpoint_and_the_next_run_resumes_from_it(tmp_path):
    signum = signal.SIGINT
    recipe, run_dir = tmp_path / "long.yaml", tmp_path / "run"
    recipe.write_text(LONG_RECIPE)
    args = ["train", SPEC, "--recipe", recipe, "--run-dir", run_dir, "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "diffc", *map(str, args)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while len(_rows(run_dir)) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    sent = time.time()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert f"starting fresh in {run_dir}" in out and "Traceback" not in err
    [(nimg, path)] = ckpt.list_checkpoints(run_dir)
    assert path.stat().st_mtime >= sent - 1 and time.time() - path.stat().st_mtime < 60   # written on the signal
    assert nimg >= 24 and nimg == _rows(run_dir)[-1]["nimg"]
    assert f"checkpoint {path}" in out and "run the same command to resume" in err
    assert signal.Signals(signum).name in err
    assert not list(run_dir.glob(".*.tmp"))

    code, out, err = run_cli([*args, "--steps", nimg // 8 + 2])
    assert code == 0, err
    assert f"resuming {run_dir} from {nimg} images" in out and path.name in out
    images = [r["nimg"] for r in _rows(run_dir)]
    assert images == sorted(set(images)) and images[-1] == nimg + 16


def test_rows_past_the_resumed_checkpoint_are_dropped_so_the_curve_is_monotone(tmp_path, capsys):
    first = run(tmp_path, "checkpoint: {keep: 5}\n")
    assert [r["nimg"] for r in _rows(tmp_path)] == [8, 16, 24, 32, 40, 48]
    first.checkpoint.unlink()                    # as if killed after logging 40 and 48 but before checkpointing 48
    (tmp_path / "loss.png").unlink()
    ckpt.checkpoint_path(tmp_path, 32).unlink()
    capsys.readouterr()
    run(tmp_path, "checkpoint: {keep: 5}\n")     # resumes from 16
    out = capsys.readouterr().out
    assert "resuming" in out and "from 16 images" in out and "dropped 4 stats.jsonl row(s)" in out
    assert [r["nimg"] for r in _rows(tmp_path)] == [8, 16, 24, 32, 40, 48]
    assert (tmp_path / "loss.png").is_file()


def test_the_logged_loss_is_the_optimised_one_with_its_parts(tmp_path):
    run(tmp_path)
    for row in _rows(tmp_path):      # toy model: ddpm_eps mse + aux 'smooth' at weight 0.5, no loss weighting
        assert row["loss"] == pytest.approx(row["loss/mse"] + 0.5 * row["loss/aux.smooth"], rel=1e-5)


def test_checkpoints_on_a_wall_clock_interval_and_an_early_grid(tmp_path, monkeypatch, capsys):
    ticks = iter(range(0, 10 ** 6, 40))                # 40 s pass per reading of the clock
    monkeypatch.setattr(loop, "_clock", lambda: next(ticks))
    run(tmp_path, "checkpoint: {every: 1000 steps, minutes: 1, keep: 10}\nsample: {first: 2 steps}\n")
    # readings: start 0; after each step 40, 80 (due -> saved, reset at 120), 160, 200 (due) ...
    assert [n for n, _ in ckpt.list_checkpoints(tmp_path)] == [16, 32, 48]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["samples-000000000016.png",
                                                                       "samples-000000000048.png"]
    out = capsys.readouterr().out
    assert f"grid {tmp_path / 'samples' / 'samples-000000000016.png'}" in out
    assert f"checkpoint {ckpt.checkpoint_path(tmp_path, 32)} (32 images, 4 steps)" in out


def _signal_on_reading(monkeypatch, readings: dict):
    """The loop's clock sends this process the signals of `readings` {k: [signum, ...]} at its k-th reading."""
    count = iter(range(10 ** 6))

    def clock():
        for signum in readings.get(next(count), []):
            os.kill(os.getpid(), signum)
        return 0.0
    monkeypatch.setattr(loop, "_clock", clock)


def test_sigterm_finishes_the_step_checkpoints_and_exits_143_then_resume_matches(tmp_path, monkeypatch):
    _signal_on_reading(monkeypatch, {3: [signal.SIGTERM]})       # at the end of step 3
    with pytest.raises(Interrupted) as stop:
        run(tmp_path / "split", "checkpoint: {every: 1000 steps}\n")
    assert stop.value.exit_code == 143 and "SIGTERM" in str(stop.value)
    assert [n for n, _ in ckpt.list_checkpoints(tmp_path / "split")] == [24]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL          # handlers restored
    monkeypatch.setattr(loop, "_clock", lambda: 0.0)
    resumed = run(tmp_path / "split")
    whole = run(tmp_path / "whole")
    a, b = ckpt.load_checkpoint(whole.checkpoint), ckpt.load_checkpoint(resumed.checkpoint)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_second_signal_aborts_at_once_leaving_the_last_checkpoint_intact(tmp_path, monkeypatch):
    run(tmp_path, "duration: 2 steps\n")
    before = ckpt.list_checkpoints(tmp_path)
    _signal_on_reading(monkeypatch, {2: [signal.SIGINT, signal.SIGINT]})
    with pytest.raises(Interrupted) as stop:
        run(tmp_path, "checkpoint: {every: 1000 steps}\n")
    assert stop.value.exit_code == 130 and "aborted at once" in str(stop.value)
    assert ckpt.list_checkpoints(tmp_path) == before and not list(tmp_path.glob(".*tmp"))
    ckpt.load_checkpoint(before[-1][1])


def test_tensorboard_events_past_the_resumed_checkpoint_are_purged(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    extra = "checkpoint: {keep: 5}\nlog: {tensorboard: true}\n"
    first = run(tmp_path, extra)
    first.checkpoint.unlink()
    ckpt.checkpoint_path(tmp_path, 32).unlink()       # resume from 16: steps 24..48 logged again
    run(tmp_path, extra)
    events = EventAccumulator(str(tmp_path / "tensorboard"), purge_orphaned_data=True).Reload()
    assert [e.step for e in events.Scalars("loss")] == [8, 16, 24, 32, 40, 48]
