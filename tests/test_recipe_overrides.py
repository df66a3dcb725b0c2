"""Recipe fields on the command line (`key.sub=value`), validated like the YAML with errors located in the
override; one --device vocabulary (cpu, cuda, cuda:N) in every command, an unavailable device an exit 2."""
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import ROOT, run_cli  # noqa: E402
from train_toy import toy_built  # noqa: E402

from diffc import checkpoints as ckpt
from diffc.errors import UserError
from diffc.training.loop import train
from diffc.training.recipe import Duration
from diffc.training.recipe_loader import load_recipe, parse_recipe

SPEC = ROOT / "specs" / "dit_dtr.diffspec"


def _error(overrides, text=None):
    with pytest.raises(UserError) as info:
        parse_recipe(text, "r.yaml", overrides=overrides) if text is not None else load_recipe(None, overrides)
    [diag] = info.value.diagnostics
    return diag


def test_number_overrides_replace_the_recipe_values():
    recipe, _, _ = load_recipe(None, ["optimizer.lr=3e-4", "batch=128", "seed=7"])
    assert recipe.optimizer.lr == 3e-4 and recipe.batch == 128 and recipe.seed == 7
    assert recipe.optimizer.betas == (0.9, 0.99) and recipe.weighting.kind == "min_snr"    # the rest kept


def test_list_overrides_are_read_as_yaml_lists():
    recipe, _, _ = load_recipe(None, ["ema.sigma_rel=[0.04, 0.08, 0.12]", "optimizer.betas=[0.8, 0.95]"])
    assert recipe.ema.sigma_rel == [0.04, 0.08, 0.12] and tuple(recipe.optimizer.betas) == (0.8, 0.95)


def test_nested_overrides_durations_nulls_and_mappings():
    recipe, _, _ = load_recipe(None, ["sample.every=8Ki", "lr.warmup=100 steps", "optimizer.grad_clip=null",
                                      "weighting={kind: p2, k: 2}"])
    assert recipe.sample.every == Duration(8192) and recipe.lr.warmup == Duration(100, "steps")
    assert recipe.optimizer.grad_clip is None
    assert recipe.weighting.kind == "p2" and recipe.weighting.k == 2 and recipe.weighting.gamma == 5  # merged
    recipe = parse_recipe("batch: 8\n", "r.yaml", overrides=["data.hflip=0.5"])                       # absent section
    assert recipe.data.hflip == 0.5 and recipe.batch == 8


def test_unknown_key_is_located_in_the_override_with_did_you_mean():
    diag = _error(["batch=32", "optimizer.lrr=1e-4"])
    assert (diag.file, diag.line, diag.col, diag.end_col) == ("<override 2: optimizer.lrr=1e-4>", 1, 11, 14)
    assert "unknown key 'lrr' in 'optimizer'" in diag.message and diag.help == "did you mean 'lr'?"
    diag = _error(["optimzer.lr=1e-4"])
    assert diag.col == 1 and diag.help == "did you mean 'optimizer'?"


def test_bad_value_is_located_at_the_value_with_the_same_message_as_in_yaml():
    diag = _error(["batch=128", "optimizer.lr=abc"])
    assert diag.location() == "<override 2: optimizer.lr=abc>:1:14"
    assert "invalid value for 'optimizer.lr'" in diag.message and diag.source_line == "optimizer.lr=abc"
    in_file = _error([], "optimizer: {lr: abc}\n")
    assert in_file.message == diag.message
    assert "must be at least 1" in _error(["batch=0"]).message
    assert "unknown kind" in _error(["noise.kind=lognormall"]).message
    assert _error(["batch"]).message.startswith("cannot read override 'batch'")
    assert "invalid YAML" in _error(["batch=[1"]).message


def test_cli_rejects_a_bad_override_before_building_and_dry_run_shows_the_good_ones(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("batch: 8\n")
    code, out, err = run_cli(["train", SPEC, "--recipe", recipe, "optimizer.lr=abc", "--dry-run"])
    assert code == 2 and "<override 1: optimizer.lr=abc>:1:14: error" in err and "Traceback" not in err
    code, out, err = run_cli(["train", SPEC, "--recipe", recipe, "optimizer.lr=3e-4", "sample.every=8Ki",
                              "--dry-run"])
    assert code == 0, err
    assert "# overrides: optimizer.lr=3e-4 sample.every=8Ki" in out and "lr: 0.0003" in out and "every: 8Ki" in out


def test_the_run_records_its_overrides(tmp_path):
    overrides = ("optimizer.lr=2e-3", "log.every=1 steps")
    recipe = parse_recipe("batch: 8\nduration: 2 steps\nsample: {every: null, n: 2, steps: 2}\n"
                          "log: {tensorboard: false}\n", "r.yaml", overrides=overrides)
    result = train(toy_built(), recipe, tmp_path, progress=False, overrides=overrides)
    saved = (tmp_path / "recipe.yaml").read_text()
    assert "# override: optimizer.lr=2e-3\n# override: log.every=1 steps\n" in saved
    assert yaml.safe_load(saved)["optimizer"]["lr"] == 2e-3
    data = ckpt.load_checkpoint(result.checkpoint)
    assert data["recipe_overrides"] == list(overrides) and data["recipe"]["optimizer"]["lr"] == 2e-3


@pytest.mark.parametrize("args", [
    ["train", SPEC, "--dry-run"], ["sample", "run", "--out", "o"], ["eval", "run"],
    ["encode", ".", "--vae", "v", "-o", "x.npz"], ["decode", "x.npz", "--vae", "v", "-o", "o"],
    ["ema", ".", "--sigma-rel", "0.1"]])
def test_every_command_refuses_a_missing_cuda_device_with_exit_2(args):
    code, _, err = run_cli([*args, "--device", "cuda:99"])
    assert code == 2 and "--device cuda:99: " in err and "Traceback" not in err
    if not torch.cuda.is_available():
        assert "no CUDA device is available" in err


def test_a_device_name_outside_cpu_cuda_cuda_n_is_a_usage_error():
    code, _, err = run_cli(["sample", "run", "--out", "o", "--device", "gpu0"])
    assert code == 2 and "'gpu0' is not a device; use cpu, cuda or cuda:N" in err
