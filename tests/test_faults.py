"""Faults become clear errors before work (issue 10 item 7): damaged, truncated, foreign checkpoints in every command
that reads one; outputs that cannot be written, checked first; a full disk during a checkpoint write; bad numeric
flags; JSON outputs without NaN."""
import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from diffc import checkpoints as ckpt
from diffc.cli import main
from diffc.errors import UserError
from diffc.files import json_text

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "dit_dtr.diffspec"
RECIPE = """\
batch: 4
duration: 1 steps
ema: {kind: power, sigma_rel: [0.05, 0.10], snapshot_every: 1 steps}
checkpoint: {every: 1 steps, minutes: null}
sample: {every: null, first: null, n: 4, steps: 2}
log: {every: 1 steps, tensorboard: false}
"""


def cli(capsys, *args):
    """Run diffc in-process: (exit code, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([*map(str, args)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return exit_info.value.code, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-step run of the tiny DTR DiT (checkpoint and post-hoc EMA snapshots) and damaged copies of it."""
    base = tmp_path_factory.mktemp("faults")
    (base / "r.yaml").write_text(RECIPE)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(SPEC), "--recipe", str(base / "r.yaml"), "--run-dir", str(base / "run"), "--no-progress"])
    assert exit_info.value.code == 0
    (_, good), = ckpt.list_checkpoints(base / "run")
    data = torch.load(good, weights_only=True)
    raw = good.read_bytes()
    (base / "empty.pt").write_bytes(b"")
    (base / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (base / "text.pt").write_text("not a checkpoint\n")
    torch.save({"format": ckpt.CHECKPOINT_FORMAT}, base / "nokeys.pt")
    torch.save({**data, "model": "weights"}, base / "wrongtype.pt")
    cut = lambda state: {k: v[..., :1] for k, v in state.items()}  # noqa: E731   weights of another shape
    torch.save({**data, "model": cut(data["model"]), "ema": {p: cut(s) for p, s in data["ema"].items()}},
               base / "othershapes.pt")
    return base, good


BAD = {"empty.pt": "checkpoint file is empty (0 bytes)", "truncated.pt": "cannot read checkpoint (",
       "text.pt": "cannot read checkpoint (", "nokeys.pt": "damaged checkpoint: 'model' is missing",
       "wrongtype.pt": "damaged checkpoint: 'model' is not a dict of named tensors", "othershapes.pt": "do not fit the model"}


@pytest.mark.parametrize("name", sorted(BAD))
def test_sample_refuses_a_bad_checkpoint(trained, capsys, name):
    base, _ = trained
    code, err = cli(capsys, "sample", base / name, "--out", base / f"out-{name}", "--n", 2, "--steps", 2)
    assert code == 2 and f"{base / name}: error: " in err and BAD[name] in err


@pytest.mark.parametrize("name", ["truncated.pt", "othershapes.pt"])
def test_eval_refuses_a_bad_checkpoint(trained, capsys, name):
    base, _ = trained
    code, err = cli(capsys, "eval", base / name, "--n", 4, "--steps", 2, "--out", base / "e.json")
    assert code == 2 and BAD[name] in err


@pytest.mark.parametrize("name,message", [("empty.pt", "cannot read feature-extractor weights"),
                                          ("nokeys.pt", "not digits-CNN weights")])
def test_eval_refuses_bad_extractor_weights_before_sampling(trained, capsys, name, message):
    base, good = trained
    code, err = cli(capsys, "eval", good, "--n", 4, "--steps", 2, "--weights", base / name, "--out", base / "w.json")
    assert code == 2 and f"{base / name}: error: {message}" in err and not (base / "w.json").exists()


@pytest.mark.parametrize("name", ["empty.pt", "truncated.pt", "othershapes.pt"])
def test_init_from_refuses_a_bad_checkpoint(trained, capsys, name, tmp_path):
    base, _ = trained
    code, err = cli(capsys, "train", SPEC, "--recipe", base / "r.yaml", "--run-dir", tmp_path / "run",
                    "--init-from", base / name, "--no-progress")
    assert code == 2 and str(base / name) in err
    assert not ckpt.list_checkpoints(tmp_path / "run")


@pytest.mark.parametrize("name", ["empty.pt", "truncated.pt", "nokeys.pt", "othershapes.pt"])
def test_resume_refuses_a_bad_latest_checkpoint(trained, capsys, name, tmp_path):
    base, good = trained
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(base / name, run / "training-state-000000000008.pt")
    code, err = cli(capsys, "train", SPEC, "--recipe", base / "r.yaml", "--run-dir", run, "--no-progress",
                    "--steps", 3)
    assert code == 2 and str(run / "training-state-000000000008.pt") in err
    assert (run / "training-state-000000000008.pt").read_bytes() == (base / name).read_bytes()   # left as found


@pytest.mark.parametrize("name", ["empty.pt", "truncated.pt", "text.pt", "nokeys.pt", "othershapes.pt"])
def test_import_weights_refuses_bad_weights(trained, capsys, name, tmp_path):
    base, _ = trained
    code, err = cli(capsys, "import-weights", SPEC, base / name, "-o", tmp_path / "m.pt")
    assert code == 2 and not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("damage", ["truncate", "foreign"])
def test_ema_refuses_a_bad_snapshot(trained, capsys, damage, tmp_path):
    base, _ = trained
    run = tmp_path / "run"
    shutil.copytree(base / "run", run)
    snapshot = sorted((run / "phema").glob("*.pt"))[-1]
    if damage == "truncate":
        snapshot.write_bytes(snapshot.read_bytes()[:100])
    else:
        data = torch.load(snapshot, weights_only=True)
        torch.save({**data, "state_dict": {k: v[..., :1] for k, v in data["state_dict"].items()}}, snapshot)
    code, err = cli(capsys, "ema", run, "--sigma-rel", 0.08, "--out", tmp_path / "p.pt")
    assert code == 2 and f"{snapshot}: error:" in err and not (tmp_path / "p.pt").exists()


@pytest.mark.parametrize("flags,message", [(["--seed", 10 ** 30], "--seed"), (["--guidance", "nan"], "not a finite"),
                                           (["--guidance", "inf"], "not a finite"), (["--eta", "-1"], "non-negative"),
                                           (["--sigma-max", "0"], "positive")])
def test_bad_numeric_flags_exit_2_before_loading(trained, capsys, flags, message):
    _, good = trained
    code, err = cli(capsys, "sample", good, "--out", "unused", *flags)
    assert code == 2 and message in err


def test_unwritable_outputs_are_refused_before_sampling(trained, capsys):
    base, good = trained
    blocker = base / "a-file"
    blocker.write_text("")
    missing = base / "no-such-checkpoint.pt"            # the folder is checked first: its error, not this one
    code, err = cli(capsys, "sample", missing, "--out", blocker / "out")
    assert code == 2 and "cannot write to output folder" in err
    code, err = cli(capsys, "eval", good, "--out", blocker / "r.json")
    assert code == 2 and "cannot write to result folder" in err
    code, err = cli(capsys, "sample", good, "--out", blocker / "out")
    assert code == 2 and "cannot write to output folder" in err


def full_disk(monkeypatch, after_bytes=1000):
    """Make the next file writes fail with ENOSPC once `after_bytes` have gone through."""
    real = os.fdopen

    class Full:
        def __init__(self, file):
            self.file, self.count = file, 0

        def write(self, data):
            self.count += len(data)
            if self.count > after_bytes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.file.write(data)

        def __getattr__(self, name):
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    monkeypatch.setattr("diffc.files.os.fdopen", lambda fd, mode: Full(real(fd, mode)))


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(trained, monkeypatch, tmp_path):
    _, good = trained
    data = ckpt.load_checkpoint(good)
    ckpt.save_checkpoint(tmp_path, {**data, "nimg": 8}, keep=1)
    before = (tmp_path / "training-state-000000000008.pt").read_bytes()
    full_disk(monkeypatch)
    with pytest.raises(UserError, match="No space left on device") as err:
        ckpt.save_checkpoint(tmp_path, {**data, "nimg": 16}, keep=1)
    assert "earlier version of the file is intact" in err.value.diagnostics[0].help
    assert sorted(p.name for p in tmp_path.iterdir()) == ["training-state-000000000008.pt"]   # no .tmp, no 16
    assert (tmp_path / "training-state-000000000008.pt").read_bytes() == before


def test_disk_full_during_training_exits_2_with_the_last_checkpoint_intact(trained, capsys, monkeypatch, tmp_path):
    base, _ = trained
    run = tmp_path / "run"
    shutil.copytree(base / "run", run)
    (_, last), = ckpt.list_checkpoints(run)
    before = last.read_bytes()
    full_disk(monkeypatch, after_bytes=100_000)
    code, err = cli(capsys, "train", SPEC, "--recipe", base / "r.yaml", "--run-dir", run, "--steps", 2,
                    "--no-progress")
    assert code == 2 and "No space left on device" in err
    assert ckpt.list_checkpoints(run) == [(4, last)] and last.read_bytes() == before
    assert not list(run.glob(".*.tmp")) and not list((run / "phema").glob(".*.tmp"))


def test_json_outputs_never_hold_nan(tmp_path):
    strict = dict(parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    text = json_text({"fid": float("nan"), "kid": [1.0, float("inf")], "ok": 2.5})
    assert json.loads(text, **strict) == {"fid": None, "kid": [1.0, None], "ok": 2.5}
    from diffc.training.runlog import RunLog
    log = RunLog(tmp_path, True, False, False, 100, 0)
    log.step(8, {"loss": float("nan")}, {"lr": 0.1, "grad_norm": float("nan")}, 10.0, flush=True)   # a skipped step
    log.close()
    row, = [json.loads(line, **strict) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert row["grad_norm"] is None and row["lr"] == 0.1
