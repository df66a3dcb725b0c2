"""`diffc train SPEC`: train a compiled spec from a recipe (see diffc.training.recipe for the keys)."""
from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

import attrs
import click

from diffc.commands.common import device_option, resolve_device
from diffc.errors import UserError


def _check_builtin_data(spec: str, built) -> None:
    """The built-in recipe trains on 1x16x16 digits: a model of other samples needs a recipe naming its data."""
    shape = tuple(built.interface.sample_shape)
    if shape != (1, 16, 16):
        tiny = _tiny_alternatives(spec, built)
        raise UserError(f"{spec} names no recipe, and {built.model_name} takes {'x'.join(map(str, shape))} samples; "
                        "the built-in recipe trains on 1x16x16 digits",
                        help="name a recipe with your data (--recipe R, e.g. data: {name: latents, path: ...})"
                             + (" or train a tiny model: " + " or ".join(tiny) if tiny else ""))


def _tiny_alternatives(spec: str, built) -> list[str]:
    """Commands for the tiny models a user can train instead: `*tiny*` models of this spec, else sibling
    `*tiny*` specs of the same family (specs/edm2_tiny.diffspec for specs/edm2_img512_xl.diffspec)."""
    names = [n for n in built.compiled.program.model_names() if "tiny" in n.lower()]
    if names:
        return [f"diffc train {spec} --model {n}" for n in names]
    family = Path(spec).stem.split("_")[0]
    return [f"diffc train {p}" for p in sorted(Path(spec).parent.glob(f"{family}*tiny*.diffspec"))]


@click.command("train", epilog="""\b
Examples:
  diffc train specs/dit_dtr.diffspec                       # tiny DiT on the built-in digits, CPU
  diffc train specs/dit_dtr.diffspec --dry-run             # resolved recipe, model summary, memory
  diffc train specs/dit_dtr.diffspec --recipe recipes/dit_digits.yaml --steps 200
  diffc train specs/dit_dtr.diffspec optimizer.lr=3e-4 batch=128 sample.every=8Ki   # recipe fields
  torchrun --nproc_per_node=4 -m diffc train spec.diffspec --device cuda --bf16
Durations: images (200Ki, 50000, 1M) or steps ('10k steps'). Re-running resumes from the run directory.
OVERRIDES: any recipe field as key.sub=value (values read as YAML: 3e-4, null, [0.9, 0.95], {lr: 1e-4}),
checked like the recipe file; the run's recipe.yaml and checkpoints record them.""")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False), help="recipe YAML (overrides the spec's)")
@click.option("--run-dir", type=click.Path(file_okay=False), help="default: runs/<spec-stem>-<model>")
@click.option("--model", default=None, help="which model of the spec (default: the spec's default model)")
@click.option("--dry-run", is_flag=True, help="print the resolved recipe, model summary and memory estimate; exit")
@click.option("--steps", type=int, default=None, help="train for this many optimiser steps (overrides duration)")
@click.option("--duration", default=None, help="train for this long, e.g. 64Ki or '500 steps'")
@click.option("--resume/--no-resume", default=True, help="continue from the run directory's latest checkpoint")
@click.option("--allow-changed", is_flag=True, help="resume even if the spec or recipe changed")
@click.option("--init-from", type=click.Path(), default=None, help="initialise weights from a checkpoint / run dir")
@click.option("--bf16", is_flag=True, help="bfloat16 autocast (GPU)")
@click.option("--compile", "use_compile", is_flag=True, help="torch.compile the model (inductor; CPU or GPU)")
@device_option
@click.option("--no-progress", is_flag=True, help="no progress bar (logs still go to stats.jsonl)")
def train(spec, overrides, recipe_path, run_dir, model, dry_run, steps, duration, resume, allow_changed, init_from, bf16,
          use_compile, device, no_progress):
    """Train SPEC's model with a recipe: the spec's `recipe "..."`, --recipe, or the built-in digits recipe."""
    from diffc.training.recipe import Duration
    from diffc.training.recipe_loader import load_recipe, recipe_to_yaml, with_overrides
    if steps is not None and duration is not None:
        raise UserError("give either --steps or --duration, not both")
    if not Path(spec).is_file():
        raise UserError(f"spec file not found: {spec}")
    device = resolve_device(device)
    if recipe_path:                     # a bad --recipe or override is reported before the (slower) model build
        load_recipe(recipe_path, overrides)
    from diffc.compiler import build_model, emit_module
    built = build_model(spec, model=model, device="meta")     # shapes only: the dry run and the fit check
    chosen = recipe_path or built.recipe_path
    recipe, text, name = load_recipe(chosen, overrides)
    try:
        override = Duration(steps, "steps") if steps is not None else (Duration.parse(duration) if duration else None)
    except ValueError as exc:
        raise UserError(f"--duration: {exc}") from None
    if override is not None and not 0 < override.value < 2 ** 63:
        raise UserError(f"{'--steps' if steps is not None else '--duration'} must be positive, got {override}")
    recipe = with_overrides(recipe, duration=override)
    run_dir = Path(run_dir or Path("runs") / f"{Path(spec).stem}-{built.model_name}")
    base_dir = Path(chosen).parent if chosen else Path.cwd()
    if dry_run:
        from diffc.training.preflight import preflight
        from diffc.training.summary import describe
        given = f"# overrides: {' '.join(overrides)}\n" if overrides else ""
        click.echo(f"# recipe: {name}\n{given}# run directory: {run_dir}\n" + recipe_to_yaml(recipe))
        click.echo(describe(built, recipe))
        if chosen is None:                      # the data checks after the summary: a data problem still exits 2
            _check_builtin_data(spec, built)
        preflight(built, recipe, base_dir)
        return
    from diffc.training.summary import check_fits
    check_fits(built, recipe, device, _tiny_alternatives(spec, built))
    if chosen is None:
        _check_builtin_data(spec, built)
    # on CPU (the loop moves it to `device`); the initial weights follow the recipe's seed, so fresh runs repeat
    built = attrs.evolve(built, module=emit_module(built.compiled, "cpu", seed=recipe.seed))
    from diffc.training.loop import train as run_training
    from diffc.training.runlock import run_lock
    with run_lock(run_dir, note=lambda text: click.echo(text, err=True)) if _is_rank_zero() else nullcontext():
        result = run_training(built, recipe, run_dir, recipe_text=text, recipe_name=name, overrides=overrides,
                              base_dir=base_dir, device=device, resume=resume,
                              allow_changed=allow_changed, init_from=init_from, bf16=bf16, compile=use_compile,
                              progress=not no_progress)
    click.echo(f"trained to {result.nimg} images; checkpoint {result.checkpoint}; samples in {run_dir / 'samples'}")


def _is_rank_zero() -> bool:
    """The process that locks the run directory: the only one, or torchrun's rank 0."""
    return os.environ.get("RANK", "0") == "0"
