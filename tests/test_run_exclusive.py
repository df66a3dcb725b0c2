"""Runs are reproducible and exclusive (issue 10 item 6): fresh runs of one recipe give bit-identical state, a run
directory is locked while training, stale locks and temporary files of killed writes are cleaned up."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import ROOT  # noqa: E402

from diffc import checkpoints as ckpt
from diffc.cli import main
from diffc.errors import UserError
from diffc.training.runlock import LOCK_NAME, run_lock

SPEC = ROOT / "specs" / "dit_dtr.diffspec"
SHORT = """\
batch: 4
duration: 20 steps
ema: {kind: power, sigma_rel: [0.05, 0.10], snapshot_every: null}
checkpoint: {every: 100 steps, minutes: null}
sample: {every: null, first: null, n: 4, steps: 2}
log: {every: 1 steps, tensorboard: false}
seed: 7
"""


def train_cli(*args):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(SPEC), *map(str, args), "--no-progress"])
    return exit_info.value.code


def test_two_fresh_runs_of_one_recipe_are_bit_identical(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(SHORT)
    torch.manual_seed(123)                       # the global RNG state before each run must not matter
    assert train_cli("--recipe", recipe, "--run-dir", tmp_path / "a") == 0
    torch.rand(17)
    assert train_cli("--recipe", recipe, "--run-dir", tmp_path / "b") == 0
    (na, a), = ckpt.list_checkpoints(tmp_path / "a")
    (nb, b), = ckpt.list_checkpoints(tmp_path / "b")
    a, b = ckpt.load_checkpoint(a), ckpt.load_checkpoint(b)
    assert na == nb == 80
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for profile in a["ema"]:
        for key in a["ema"][profile]:
            assert torch.equal(a["ema"][profile][key], b["ema"][profile][key]), (profile, key)
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
    # the seed, not luck, makes them equal: another seed initialises elsewhere
    from diffc.compiler import build_model
    seven, eight = (build_model(SPEC, seed=s).module.state_dict() for s in (7, 8))
    assert any(not torch.equal(seven[k], eight[k]) for k in seven)
    assert all(torch.equal(seven[k], v) for k, v in build_model(SPEC, seed=7).module.state_dict().items())


def test_a_second_train_on_a_running_directory_is_refused_and_the_first_goes_on(tmp_path, capsys):
    recipe, run_dir = tmp_path / "long.yaml", tmp_path / "run"
    recipe.write_text(SHORT.replace("duration: 20 steps", "duration: 100000 steps"))
    args = ["train", SPEC, "--recipe", recipe, "--run-dir", run_dir, "--no-progress"]
    first = subprocess.Popen([sys.executable, "-m", "diffc", *map(str, args)], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stats = run_dir / "stats.jsonl"
    deadline = time.time() + 300
    while not (stats.is_file() and stats.read_text().count("\n") >= 2) and first.poll() is None \
            and time.time() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, first.communicate()
    assert (run_dir / LOCK_NAME).read_text().strip() == str(first.pid)
    assert train_cli("--recipe", recipe, "--run-dir", run_dir) == 2
    err = capsys.readouterr().err
    assert f"run directory {run_dir} is in use by another training (PID {first.pid})" in err
    assert "Traceback" not in err
    rows = stats.read_text().count("\n")
    deadline = time.time() + 120
    while stats.read_text().count("\n") <= rows and time.time() < deadline:   # the first keeps training
        time.sleep(0.2)
    assert stats.read_text().count("\n") > rows
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGINT and "Traceback" not in err
    assert ckpt.list_checkpoints(run_dir)                                        # its checkpoint on the signal
    assert (run_dir / LOCK_NAME).read_text() == ""                               # released on the way out


def test_stale_lock_is_taken_over_and_killed_writes_are_swept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_path / "run"
    (run_dir / "phema").mkdir(parents=True)
    (run_dir / LOCK_NAME).write_text(f"{dead.pid}\n")
    leftovers = [run_dir / ".training-state-000000001024.pt.k3j2l1.tmp", run_dir / "phema" / ".snap.pt.x8.tmp"]
    for path in leftovers:
        path.write_bytes(b"x" * 1000)
    kept = run_dir / "notes.tmp"                      # not an atomic-write name: left alone
    kept.write_text("mine")
    notes = []
    with run_lock(run_dir, note=notes.append):
        assert (run_dir / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(UserError, match=f"in use by another training \\(PID {os.getpid()}\\)"):
            with run_lock(run_dir, note=notes.append):
                pass
    assert f"from PID {dead.pid}, which is no longer running" in notes[0]
    assert "removed 2 temporary file(s)" in notes[1]
    assert not any(p.exists() for p in leftovers) and kept.exists()
    with run_lock(run_dir, note=notes.append):       # a clean release leaves nothing to take over
        pass
    assert len(notes) == 2


def test_unwritable_run_directory_is_refused_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write to run directory"):
        with run_lock(blocker / "run"):
            pass


def test_keep_n_cleanup_tolerates_files_already_gone(tmp_path, monkeypatch):
    real = ckpt.list_checkpoints
    ghost = (1, tmp_path / "training-state-000000000001.pt")       # listed, then removed by someone else
    monkeypatch.setattr(ckpt, "list_checkpoints", lambda run_dir: [ghost] + real(run_dir))
    for nimg in (8, 16):
        ckpt.save_checkpoint(tmp_path, {"nimg": nimg}, keep=1)
    assert [n for n, _ in real(tmp_path)] == [16]
