"""What `diffc sample` and `diffc eval` use where no flag says otherwise: the run's own preview settings (the
recipe's `sample` section: sampler, steps, guidance), so that samples match the grids written in training."""
from __future__ import annotations

PREVIEW_SAMPLER = {"ddpm": "ddim", "edm": "heun", "flow": "ode"}   # deterministic, few steps
REFERENCE_SAMPLER = {"ddpm": "ddpm", "edm": "heun", "flow": "ode"}  # the papers' protocol samplers (DDPM: 250 steps)


def recipe_sampling(choices: dict, recipe: dict, family: str, has_label: bool) -> dict:
    """`choices` (sampler, steps, guidance; None where no flag was given) completed from `recipe["sample"]`.

    No --sampler: the recipe's sampler (default: PREVIEW_SAMPLER of the family) at the recipe's steps. A --sampler
    without --steps keeps that sampler's own default steps. No --guidance: the recipe's guidance where the model has
    a label condition (as the training grids), else 1 (off). Weights without a run's recipe (imported, released)
    keep the family's defaults (diffc.sampling.DEFAULT_SAMPLER) and no guidance."""
    out = dict(choices)
    if "sample" not in recipe:                 # weights without a training run: the family's own defaults
        out["guidance"] = 1.0 if out.get("guidance") is None else out["guidance"]
        return out
    sample = dict(recipe["sample"] or {})
    if out.get("sampler") is None:
        out["sampler"] = sample.get("sampler") or PREVIEW_SAMPLER[family]
        if out.get("steps") is None:
            out["steps"] = sample.get("steps", 50)
    if out.get("guidance") is None:
        out["guidance"] = float(sample.get("guidance", 1.0)) if has_label else 1.0
    return out
