"""Recipe checks that need more than one key, or the disk: each reported at the key that must change.

Single values are checked by their field's Bound (diffc.training.recipe); these are the rest of what the
training would otherwise discover late: EMA profile names for the previews, data paths, schedule floors.
"""
from __future__ import annotations

from pathlib import Path

from diffc.errors import Diagnostic, UserError, did_you_mean

ARRAY_DATA = ("npz", "latents")


def value_mark(data, dotted: str):
    """The YAML mark of the value at `a.b.c` (or of its nearest written parent), None when never written."""
    mark = None
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data.get("__marks__", {}):
            return mark
        mark = data["__marks__"][key][1]
        data = data[key]
    return mark


def ema_profile_names(ema) -> list[str]:
    """The EMA profiles a run with this `ema` section tracks (what `sample.ema` may name)."""
    from diffc.training.phema import profile_name
    if ema.kind == "power":
        return [profile_name(s) for s in ema.sigma_rel]
    return ["ema"] if ema.kind == "classic" else []


def cross_checks(recipe, data, base_dir: Path | None, error) -> list[Diagnostic]:
    """Every multi-key problem; `error(dotted_key, message, help)` builds a located Diagnostic."""
    out = []
    if recipe.batch_per_gpu is not None and recipe.batch % recipe.batch_per_gpu:
        out.append(error("batch_per_gpu", f"batch_per_gpu {recipe.batch_per_gpu} does not divide batch {recipe.batch}",
                         None))
    if recipe.ema.kind == "power" and not recipe.ema.sigma_rel:
        out.append(error("ema.sigma_rel", "power EMA needs at least one sigma_rel", "EDM2 uses [0.05, 0.10]"))
    names = ema_profile_names(recipe.ema)
    if recipe.sample.ema not in (None, "auto") and recipe.sample.ema not in names:
        tracked = ", ".join(names) if names else f"none (ema.kind is {recipe.ema.kind})"
        out.append(error("sample.ema", f"sample.ema '{recipe.sample.ema}' is not an EMA profile this run tracks",
                         (did_you_mean(recipe.sample.ema, names) or f"tracked: {tracked}.")
                         + " ('auto' takes the first profile, null the raw weights)"))
    out.extend(_preview_sampler(recipe, error))
    if recipe.lr.kind == "cosine" and recipe.lr.min_lr > recipe.optimizer.lr:
        out.append(error("lr.min_lr", f"lr.min_lr {recipe.lr.min_lr} is above optimizer.lr {recipe.optimizer.lr}",
                         "the cosine schedule decays from optimizer.lr down to min_lr"))
    weights = recipe.noise.stage_weights
    if weights is not None and (not weights or sum(weights) <= 0):
        out.append(error("noise.stage_weights", "noise.stage_weights must hold at least one positive weight", None))
    out.extend(_data_path(recipe.data, base_dir, error))
    out.extend(_autoencoder(recipe, base_dir, error))
    return out


def _autoencoder(recipe, base_dir: Path | None, error) -> list[Diagnostic]:
    """An autoencoder goes with latent data, and its folder must hold a diffusers AutoencoderKL."""
    from diffc.autoencoder import locate_vae, resolve_vae_source
    cfg = recipe.autoencoder
    if cfg.path is None:
        return [error("autoencoder.convention", "autoencoder.convention without autoencoder.path",
                      "name the VAE folder: autoencoder: {path: DIR}")] if cfg.convention is not None else []
    if recipe.data.name != "latents":
        return [error("autoencoder.path", f"an autoencoder needs latent data, but data.name is '{recipe.data.name}'",
                      "encode the images first (diffc encode IMAGES --vae DIR -o latents.npz), then "
                      "data: {name: latents, path: latents.npz}")]
    if base_dir is None:
        return []
    try:
        resolve_vae_source(locate_vae(cfg.path, base_dir))
    except UserError as err:
        return [error("autoencoder.path", f"autoencoder.path: {err.diagnostics[0].message}", err.diagnostics[0].help)]
    return []


def _preview_sampler(recipe, error) -> list[Diagnostic]:
    """sample.sampler fits the objective's family (ddpm | edm | flow)."""
    from diffc.sampling import SAMPLERS, sampler_families
    sampler, kind = recipe.sample.sampler, recipe.objective.kind
    family = {"edm2": "edm"}.get(kind, kind.split("_")[0])
    if sampler is None or family in sampler_families(sampler):
        return []
    fitting = ", ".join(s for s in SAMPLERS if family in sampler_families(s))
    return [error("sample.sampler", f"sample.sampler '{sampler}' is for {' / '.join(sampler_families(sampler))} "
                                    f"models, but objective '{kind}' is {family}", f"use one of: {fitting}")]


def _data_path(cfg, base_dir: Path | None, error) -> list[Diagnostic]:
    """data.path given where needed, existing, and a folder or a file as `data.name` expects."""
    if cfg.name == "digits":
        return []
    if cfg.path is None:
        return [error("data", f"data '{cfg.name}' needs a path", "data: {name: %s, path: ...}" % cfg.name)]
    if base_dir is None:
        return []
    path = Path(cfg.path) if Path(cfg.path).is_absolute() else base_dir / cfg.path
    if not path.exists():
        return [error("data.path", f"data path not found: {path}", "relative paths start at the recipe's folder")]
    if cfg.name == "folder" and not path.is_dir():
        return [error("data.path", f"data 'folder' needs a folder of class sub-folders, but {path} is a file",
                      "use name: npz for an array file")]
    if cfg.name in ARRAY_DATA and not path.is_file():
        return [error("data.path", f"data '{cfg.name}' needs an .npz/.npy file, but {path} is a folder",
                      "use name: folder for a folder of images")]
    return []
