"""`diffc sample` / `diffc eval` sample as the run's training grids do unless flags say otherwise: the recipe's
EMA profile, sampler, steps and guidance; `--ema raw` for the trained weights; `eval --full` the papers' protocol."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_train_loop import run  # noqa: E402
from train_toy import install_toy_builder  # noqa: E402

from diffc.cli import main
from diffc.sampling.defaults import recipe_sampling

SAMPLE = "sample: {every: null, first: null, n: 4, steps: 3, guidance: 1.5}\n"


def _sample(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(["sample", *map(str, args)])
    assert info.value.code == 0, capsys.readouterr().err


@pytest.fixture
def toy_run(tmp_path, monkeypatch):
    install_toy_builder(monkeypatch)
    run(tmp_path / "run", SAMPLE + "duration: 2 steps\n")
    return tmp_path / "run"


def test_sample_defaults_are_the_recipe_preview_settings(toy_run, tmp_path, capsys):
    _sample([toy_run, "--n", "2", "--out", tmp_path / "a"], capsys)
    p = json.loads((tmp_path / "a" / "samples.json").read_text())
    assert p["ema"] == "ema-0.050"                          # sample.ema auto: the first tracked profile
    assert (p["sampler"]["sampler"], p["sampler"]["steps"], p["sampler"]["guidance"]) == ("ddim", 3, 1.5)


def test_flags_override_the_recipe_and_raw_means_no_ema(toy_run, tmp_path, capsys):
    _sample([toy_run, "--n", "2", "--out", tmp_path / "b", "--ema", "raw", "--sampler", "ddpm", "--guidance", "1"],
            capsys)
    p = json.loads((tmp_path / "b" / "samples.json").read_text())
    assert p["ema"] is None
    assert (p["sampler"]["sampler"], p["sampler"]["steps"], p["sampler"]["guidance"]) == ("ddpm", 250, 1.0)
    _sample([toy_run, "--n", "2", "--out", tmp_path / "c", "--ema", "0.1", "--steps", "5"], capsys)
    p = json.loads((tmp_path / "c" / "samples.json").read_text())
    assert p["ema"] == "ema-0.100" and (p["sampler"]["sampler"], p["sampler"]["steps"]) == ("ddim", 5)


def test_recipe_sampling_rules():
    recipe = {"sample": {"sampler": "dpmpp-2m", "steps": 12, "guidance": 3.0}}
    flags = {"sampler": None, "steps": None, "guidance": None}
    assert recipe_sampling(flags, recipe, "ddpm", True) == {"sampler": "dpmpp-2m", "steps": 12, "guidance": 3.0}
    assert recipe_sampling(flags, recipe, "ddpm", False)["guidance"] == 1.0          # no label: no guidance
    assert recipe_sampling({**flags, "sampler": "ddim"}, recipe, "ddpm", True)["steps"] is None  # ddim's default
    assert recipe_sampling(flags, {"sample": {}}, "edm", True) == {"sampler": "heun", "steps": 50, "guidance": 1.0}
    assert recipe_sampling(flags, {"objective": {}}, "ddpm", True) == {**flags, "guidance": 1.0}  # no run recipe
