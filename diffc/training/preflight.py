"""What a run needs, built and checked before any work: shared by `diffc train --dry-run` and the training loop.

Everything the loop would otherwise read late (data set items, the objective and loss weighting the model can take,
the noise sampler, the preview's EMA profile) fails here, so a mistake never costs a trained run.
"""
from __future__ import annotations

from pathlib import Path

import attrs

from diffc.errors import UserError
from diffc.training.conditioning import check_conditions
from diffc.training.data import build_dataset, scan_dataset
from diffc.training.noise import build_noise_sampler
from diffc.training.objectives import build_objective
from diffc.training.recipe_checks import ema_profile_names
from diffc.training.weightings import build_weighting


@attrs.define
class Prepared:
    dataset: object
    objective: object
    weighting: object
    noise: object
    batch_per_process: int
    rounds: int            # gradient-accumulation rounds per optimiser step


def preflight(built, recipe, base_dir: Path, world_size: int = 1) -> Prepared:
    """Build and check the data set (every item), objective, weighting and noise sampler for `recipe`."""
    batch_gpu = recipe.batch_per_gpu or recipe.batch // world_size
    if batch_gpu < 1 or recipe.batch % (batch_gpu * world_size):
        raise UserError(f"batch {recipe.batch} is not divisible by {world_size} processes x batch_per_gpu {batch_gpu}")
    names = ema_profile_names(recipe.ema)
    if recipe.sample.ema not in (None, "auto") and recipe.sample.ema not in names:
        raise UserError(f"sample.ema '{recipe.sample.ema}' is not a tracked EMA profile",
                        help="tracked: " + (", ".join(names) or "none"))
    dataset = build_dataset(recipe.data, built.interface, base_dir)
    scan_dataset(dataset, built.interface)
    check_conditions(built.interface, dataset)
    objective = build_objective(recipe.objective, built.interface)
    weighting = build_weighting(recipe.weighting, objective)
    noise = build_noise_sampler(recipe.noise, objective, weighting.strata)
    return Prepared(dataset, objective, weighting, noise, batch_gpu, recipe.batch // (batch_gpu * world_size))
