"""The training loop on a toy model: bit-exact resume, kill-safe checkpoints, DDP = one process, inference loading."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from train_toy import install_toy_builder, toy_built  # noqa: E402

from diffc import checkpoints as ckpt
from diffc.cli import main
from diffc.errors import UserError
from diffc.training.loop import train
from diffc.training.optim import prepare_gradients
from diffc.training.recipe_loader import parse_recipe

RECIPE = """
batch: 8
duration: 6 steps
checkpoint: {every: 2 steps, keep: 2}
sample: {every: null, n: 4, steps: 2}
log: {every: 1 steps, tensorboard: false}
ema: {kind: power, sigma_rel: [0.05, 0.10], snapshot_every: 3 steps}
"""


def recipe(extra=""):
    """RECIPE with the sections of `extra` merged in, one level deep."""
    merged = yaml.safe_load(RECIPE)
    for key, value in (yaml.safe_load(extra) or {}).items():
        merged[key] = {**merged[key], **value} if isinstance(value, dict) and key in merged else value
    return parse_recipe(yaml.safe_dump(merged), "test.yaml")


def run(tmp, extra="", stop_at=None, out_channels=1, noise="timestep", size=16, **kw):
    return train(toy_built(out_channels=out_channels, noise=noise, size=size), recipe(extra), tmp, stop_at=stop_at,
                 progress=False, **kw)


def _states_equal(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_states_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_states_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("extra,out_channels,noise", [
    ("weighting: {kind: ant_uw, intervals: 4}\nlr: {kind: cosine, warmup: 2 steps}\n", 2, "timestep"),
    ("objective: {kind: edm2}\nnoise: {kind: lognormal}\nbatch_per_gpu: 4\n", 1, "sigma"),
    ("objective: {kind: flow}\nnoise: {kind: logit_normal, mean: 0}\nema: {kind: classic, decay: 0.9}\n", 1, "time"),
])
def test_resumed_run_equals_uninterrupted_bit_for_bit(tmp_path, extra, out_channels, noise):
    whole = run(tmp_path / "whole", extra, out_channels=out_channels, noise=noise)
    first = run(tmp_path / "split", extra, stop_at=24, out_channels=out_channels, noise=noise)
    assert first.nimg == 24
    second = run(tmp_path / "split", extra, out_channels=out_channels, noise=noise)
    assert whole.nimg == second.nimg == 48
    a, b = ckpt.load_checkpoint(whole.checkpoint), ckpt.load_checkpoint(second.checkpoint)
    for key in ("model", "ema", "optimizer", "weighting"):
        assert _states_equal(a[key], b[key]), key
    assert a["model"].keys() == toy_built(noise=noise).module.state_dict().keys()


def test_checkpoint_contents_and_keep_last(tmp_path):
    result = run(tmp_path)
    names = [p.name for _, p in ckpt.list_checkpoints(tmp_path)]
    assert names == ["training-state-000000000032.pt", "training-state-000000000048.pt"]
    data = torch.load(result.checkpoint, weights_only=True)
    for key in ("model", "ema", "optimizer", "scheduler", "rng", "nimg", "data_position", "spec_text", "spec_hash",
                "recipe", "recipe_text"):
        assert key in data
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in data["model"])
    assert sorted(data["ema"]) == ["ema-0.050", "ema-0.100"]
    assert (tmp_path / "stats.jsonl").read_text().count("\n") == 6
    assert (tmp_path / "loss.png").is_file() and (tmp_path / "samples" / "samples-000000000048.png").is_file()
    assert sorted(p.name for p in (tmp_path / "phema").iterdir())[0] == "phema-000000000024-0.050.pt"


def test_changed_recipe_is_refused_on_resume(tmp_path):
    run(tmp_path, stop_at=16)
    with pytest.raises(UserError, match=r"recipe changed in: optimizer"):
        run(tmp_path, "optimizer: {lr: 0.01}\n")
    assert run(tmp_path, "optimizer: {lr: 0.01}\n", allow_changed=True).nimg == 48
    assert run(tmp_path, "optimizer: {lr: 0.01}\nduration: 8 steps\n").nimg == 64   # duration may change
    with pytest.raises(UserError, match="already holds checkpoints"):
        run(tmp_path, resume=False)          # a longer duration is not a change


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from train_toy import toy_built
from diffc import checkpoints
from diffc.training.loop import train
from diffc.training.recipe_loader import parse_recipe
r = parse_recipe({recipe!r}, "t.yaml")
train(toy_built(), r, {run!r}, stop_at=16, progress=False)
real_save = checkpoints.torch.save
def dying_save(obj, handle):
    real_save(obj, handle)
    handle.flush()
    handle.truncate(handle.tell() // 2)          # half-written, then the process dies
    os.kill(os.getpid(), signal.SIGKILL)
checkpoints.torch.save = dying_save
train(toy_built(), r, {run!r}, progress=False)
"""


def test_kill_while_writing_a_checkpoint_leaves_the_previous_one(tmp_path):
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), recipe=RECIPE, run=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    found = ckpt.list_checkpoints(tmp_path)
    assert [n for n, _ in found] == [16]
    assert ckpt.load_checkpoint(found[-1][1])["nimg"] == 16
    assert run(tmp_path).nimg == 48                              # and the run resumes from it


def test_nonfinite_gradients_are_skipped_and_counted(tmp_path):
    built = toy_built()
    before = {k: v.clone() for k, v in built.module.state_dict().items()}
    forward = built.module.forward
    built.module.forward = lambda x, t, c: (lambda out, aux: (out * float("nan"), aux))(*forward(x, t, c))
    result = train(built, recipe("duration: 2 steps\nema: {kind: none}\n"), tmp_path, progress=False)
    assert result.nonfinite_steps == 2
    assert all(torch.equal(before[k], v) for k, v in built.module.state_dict().items())
    param = torch.nn.Parameter(torch.ones(2))
    param.grad = torch.tensor([1.0, float("inf")])
    opt = torch.optim.SGD([param], lr=1.0)
    assert prepare_gradients(opt, None, "zero")[:2] == (True, False) and param.grad.tolist() == [1.0, 0.0]


def test_load_for_inference(tmp_path, monkeypatch):
    install_toy_builder(monkeypatch)
    result = run(tmp_path)
    raw = ckpt.load_for_inference(tmp_path)
    ema = ckpt.load_for_inference(result.checkpoint, ema="ema-0.100")
    data = torch.load(result.checkpoint, weights_only=True)
    assert torch.equal(ema.module.state_dict()["inp.weight"], data["ema"]["ema-0.100"]["inp.weight"])
    assert torch.equal(raw.module.state_dict()["inp.weight"], data["model"]["inp.weight"])
    assert not ema.module.training and ema.objective.family == "ddpm" and ema.info["nimg"] == 48
    with pytest.raises(UserError) as err:
        ckpt.load_for_inference(tmp_path, ema="ema-0.2")
    assert "available: ema-0.050, ema-0.100" in err.value.render()
    with pytest.raises(SystemExit) as exit_info:
        main(["ema", str(tmp_path), "--sigma-rel", "0.08", "--out", str(tmp_path / "post.pt")])
    assert exit_info.value.code == 0
    post = ckpt.load_for_inference(tmp_path / "post.pt", ema="phema-0.080")
    assert post.info["nimg"] == 48 and not torch.equal(post.module.state_dict()["inp.weight"],
                                                      ema.module.state_dict()["inp.weight"])
    (tmp_path / "training-state-000000000099.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        ckpt.load_for_inference(tmp_path)


def test_init_from_at_a_new_resolution_resizes_positions_and_shifts(tmp_path):
    small = run(tmp_path / "small", "data: {resolution: 8}\n", stop_at=8, size=8)
    built = toy_built(size=16)
    result = train(built, recipe("duration: 1 steps\n"), tmp_path / "big", init_from=str(small.checkpoint),
                   progress=False)
    data = ckpt.load_checkpoint(result.checkpoint)
    assert data["recipe"]["objective"]["shift"] == 2.0
    assert data["model"]["pos"].shape == (1, 64, 16)


def _ddp_worker(rank, world, run_dir, port, result_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    train(toy_built(), recipe("batch_per_gpu: 4\nema: {kind: classic, decay: 0.9}\n"), run_dir, progress=False)
    torch.distributed.destroy_process_group()


def test_two_gloo_processes_equal_one(tmp_path):
    import socket
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "ddp"), port, None), nprocs=2, join=True)
    single = run(tmp_path / "one", "batch_per_gpu: 4\nema: {kind: classic, decay: 0.9}\n")
    a = ckpt.load_checkpoint(single.checkpoint)
    b = ckpt.load_checkpoint(ckpt.resolve_checkpoint(tmp_path / "ddp"))
    assert b["world_size"] == 2 and a["world_size"] == 1
    for key, value in a["model"].items():
        assert torch.allclose(value, b["model"][key], atol=1e-6), key
    for key, value in a["ema"]["ema"].items():
        assert torch.allclose(value, b["ema"]["ema"][key], atol=1e-6), key
