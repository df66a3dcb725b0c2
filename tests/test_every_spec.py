"""Every shipped spec runs by its own command: `diffc train SPEC --dry-run` answers for all of them, the tiny
defaults train their first steps, and a default too big for the machine stops before allocating (exit 2)."""
import re
from pathlib import Path

import attrs
import pytest

from diffc.cli import main
from diffc.compiler import build_model, emit_module
from diffc.training import summary
from diffc.training.recipe import Duration, SampleConfig
from diffc.training.recipe_loader import load_recipe

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.diffspec"))
TINY = 2 ** 30          # a default under 1 GiB of training memory is a "tiny default" (CPU-sized)


def _meta(spec):
    built = build_model(spec, device="meta")
    return built, load_recipe(built.recipe_path)[0]


def _run(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_specs_are_shipped():
    names = {p.stem for p in SPECS}
    assert {"dit", "dit_dtr", "sit_layersync", "edm2_tiny", "edm2_img512_xxl", "multistage_unet"} <= names


def test_dry_run_builds_on_meta_and_matches_a_real_build():
    """The meta-device estimate equals the one of a real CPU module (same shapes, same hooks)."""
    built, recipe = _meta(ROOT / "specs" / "dit_dtr.diffspec")
    assert next(built.module.parameters()).is_meta
    real = attrs.evolve(built, module=emit_module(built.compiled, "cpu"))
    assert summary.estimate_memory(real, recipe) == summary.estimate_memory(built, recipe)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_dry_run_then_first_steps_or_a_stop_before_allocating(spec, tmp_path, monkeypatch, capsys):
    """`--dry-run` answers; then a tiny default trains two steps with its own recipe (4-sample, 2-step final
    grid), and a bigger one, on a machine with 1 GiB free, stops with the estimate, the memory available and
    a tiny model to use instead."""
    monkeypatch.chdir(tmp_path)
    estimates = {}          # the stop below reuses the dry run's estimate (the slow part: a meta forward)
    estimate = summary.estimate_memory
    monkeypatch.setattr(summary, "estimate_memory", lambda built, recipe, world_size=1: estimates.setdefault(
        built.model_name, estimate(built, recipe, world_size)))
    code, out, err = _run(["train", str(spec), "--dry-run"], capsys)
    assert "parameters:" in out and "memory/proc:" in out and "optimizer:" in out
    assert code == 0 or (code == 2 and "names no recipe" in err and "train a tiny model: diffc train " in err), err
    assert not (tmp_path / "runs").exists()
    total = re.search(r"total ~([\d,.]+ MiB)", out).group(1)
    if float(total.split()[0].replace(",", "")) * 2 ** 20 <= TINY:
        from diffc.training.loop import train
        built, recipe = _meta(spec)
        built = attrs.evolve(built, module=emit_module(built.compiled, "cpu"))
        recipe = attrs.evolve(recipe, duration=Duration(2, "steps"), sample=SampleConfig(every=None, n=4, steps=2))
        result = train(built, recipe, tmp_path / "run", progress=False,
                       base_dir=built.recipe_path.parent if built.recipe_path else ROOT)
        assert result.nimg == 2 * recipe.batch
        assert result.checkpoint.is_file() and any((tmp_path / "run" / "samples").iterdir())
        return
    monkeypatch.setattr(summary, "available_memory", lambda device: TINY)
    code, out, err = _run(["train", str(spec)], capsys)
    assert code == 2
    assert f"needs ~{total} to train" in err and f"{summary.mib(TINY)} is available on cpu" in err
    assert re.search(r"train a tiny model instead: diffc train \S+(tiny\S*\.diffspec| --model \w*tiny)", err)
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def test_dit_xl_suggests_dit_tiny(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(summary, "available_memory", lambda device: 16 * 2 ** 30)
    code, _, err = _run(["train", str(ROOT / "specs" / "dit.diffspec")], capsys)
    assert code == 2 and "DiT_XL_2 needs ~44,000.9 MiB" in err
    assert "--model DiT_tiny" in err
