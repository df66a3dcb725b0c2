"""`diffc sample CKPT --n N --out DIR`: PNG per sample, a grid PNG, an .npz and the provenance as JSON."""
from __future__ import annotations

import functools
from pathlib import Path

import click

from diffc.bounds import NON_NEGATIVE, POSITIVE
from diffc.commands.common import SEED_TYPE, FiniteFloat, device_option, resolve_device
from diffc.files import check_writable_folder, json_text
from diffc.sampling import DEFAULT_STEPS, ODE_METHODS, SAMPLERS


def sampler_options(command):
    """Options shared by `sample` and `eval` that build a SamplerConfig."""
    options = [
        click.option("--ema", default=None,
                     help="EMA profile (e.g. 0.100 or ema-0.100), or 'raw' for the trained weights; default: the "
                          "run's sample.ema, the weights of its training grids ('auto' = the first profile tracked, "
                          "ema-0.050 in the default recipe)"),
        click.option("--sampler", type=click.Choice(list(SAMPLERS)), default=None,
                     help="default: the run's sample.sampler at sample.steps, as in its training grids (ddim for "
                          "DDPM models, heun for EDM, ode for flow unless the recipe says otherwise); dpmpp-2m "
                          "(DPM-Solver++ 2M), unipc and euler-a (Euler ancestral) run diffusers' schedulers on DDPM "
                          "and flow models"),
        click.option("--steps", type=click.IntRange(min=1), default=None,
                     help="sampling steps; default: the run's sample.steps, or with --sampler that sampler's own: "
                          + ", ".join(f"{k} {v}" for k, v in DEFAULT_STEPS.items())),
        click.option("--eta", type=FiniteFloat(NON_NEGATIVE), default=0.0, show_default=True,
                     help="DDIM stochasticity"),
        click.option("--ode-method", type=click.Choice(list(ODE_METHODS)), default="heun",
                     show_default=True, help="flow ODE solver (dopri5: adaptive, torchdiffeq)"),
        click.option("--sigma-min", type=FiniteFloat(POSITIVE), default=0.002, show_default=True,
                     help="EDM schedule: lowest sigma"),
        click.option("--sigma-max", type=FiniteFloat(POSITIVE), default=80.0, show_default=True,
                     help="EDM schedule: highest sigma"),
        click.option("--rho", type=FiniteFloat(POSITIVE), default=7.0, show_default=True,
                     help="EDM rho schedule exponent"),
        click.option("--churn", type=FiniteFloat(NON_NEGATIVE), default=0.0, show_default=True,
                     help="EDM S_churn (0 = deterministic)"),
        click.option("--guidance", type=FiniteFloat(NON_NEGATIVE), default=None,
                     help="classifier-free guidance scale on all conditions (1 = off); with --guide, the scale w "
                          "of D = D_guide + w (D - D_guide); default: the run's sample.guidance for "
                          "class-conditional models (2 in the default recipe), else 1"),
        click.option("--semantic-guidance", type=FiniteFloat(NON_NEGATIVE), default=None,
                     help="disentangled guidance: semantic scale"),
        click.option("--control-guidance", type=FiniteFloat(NON_NEGATIVE), default=None,
                     help="disentangled guidance: control scale"),
        click.option("--guidance-channels", type=click.IntRange(min=1), default=None,
                     help="guide only the first K output channels (default: the sample channels, a learned "
                          "variance from the conditional branch; 3 reproduces DiT's forward_with_cfg)"),
        click.option("--variance", type=click.Choice(["large", "small"]), default="large", show_default=True,
                     help="DDPM fixed variance: large = beta_t (ADM/DiT), small = posterior variance"),
        click.option("--clip-denoised/--no-clip-denoised", default=None,
                     help="DDPM/DDIM: clip predicted x0 to [-1, 1] (default: pixel models yes, latent models no)"),
        click.option("--class", "label", type=click.IntRange(min=0), default=None,
                     help="class label for every sample (default: drawn from each sample's seed)"),
        click.option("--seed", type=SEED_TYPE, default=0, show_default=True, help="sample i uses seed SEED + i"),
        click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True),
        device_option,
        click.option("--vae", default=None,
                     help="latent models: decode with this AutoencoderKL folder instead of the one trained with"),
    ]
    return functools.reduce(lambda cmd, option: option(cmd), reversed(options), command)


def load_for_options(checkpoint, options: dict):
    """The checkpoint's InferenceBundle with --ema (default: the run's sample.ema; 'raw': no EMA)."""
    from diffc.checkpoints import RECIPE_EMA
    from diffc.sampling.generate import load_bundle
    ema = {None: RECIPE_EMA, "raw": None}.get(options["ema"], options["ema"])
    return load_bundle(checkpoint, ema=ema, device=options["device"], vae=options.get("vae"))


def sampler_config(options: dict, bundle):
    """The SamplerConfig of the flags, completed from the run's recipe (diffc.sampling.defaults)."""
    from diffc.sampling.defaults import recipe_sampling
    from diffc.sampling.generate import SamplerConfig, resolve_for
    fields = ("sampler", "steps", "eta", "ode_method", "guidance", "semantic_guidance", "control_guidance",
              "guidance_channels", "variance", "clip_denoised", "sigma_min", "sigma_max", "rho", "churn")
    has_label = any(c.kind == "label" for c in bundle.interface.conditions)
    chosen = recipe_sampling({name: options[name] for name in fields}, getattr(bundle, "recipe", None) or {},
                             bundle.objective.family, has_label)
    return resolve_for(SamplerConfig(**chosen), bundle.objective)


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--n", "count", type=click.IntRange(min=1), default=64, show_default=True, help="number of samples")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="output folder")
@click.option("--grid", "grid_count", type=click.IntRange(min=1), default=64, show_default=True,
              help="how many of the first samples the grid shows")
@click.option("--guide", type=click.Path(), default=None,
              help="guide by a second network (EDM2 gnet / autoguidance): a checkpoint or run directory")
@click.option("--guide-ema", default=None, help="EMA profile of the --guide network")
@click.option("--spec", type=click.Path(dir_okay=False), default=None,
              help="CHECKPOINT is a released weights file (DiT .pt, DTR/SiT training checkpoint, EDM2 .pkl) for "
                   "this spec's model; it is imported on the fly (see diffc import-weights)")
@click.option("--model", default=None, help="with --spec: which model of the spec")
@click.option("--weights", "which", type=click.Choice(["ema", "model"]), default="ema", show_default=True,
              help="with --spec: which weights of a training checkpoint")
@sampler_options
def sample(checkpoint, count, out, grid_count, guide, guide_ema, spec, model, which, **options):
    """Generate N images from CHECKPOINT (a file or a run directory) into the folder OUT."""
    import attrs
    import numpy as np

    from diffc.sampling.generate import generate, load_bundle
    from diffc.sampling.guidance import untrained_null_conditions
    from diffc.sampling.images import grid_image, pil_image

    options["device"] = resolve_device(options["device"])
    out = check_writable_folder(out)                     # before loading and sampling, not after
    if spec:
        from diffc.weights import load_released
        bundle = load_released(spec, checkpoint, model, which, device=options["device"], vae=options["vae"])
    else:
        bundle = load_for_options(checkpoint, options)
    config = sampler_config(options, bundle)
    if guide:
        bundle = attrs.evolve(bundle, guide=load_bundle(guide, ema=guide_ema, device=options["device"]))
    else:
        for warning in untrained_null_conditions(bundle, config.guidance, config.semantic_guidance,
                                                 config.control_guidance):
            click.echo(warning, err=True)
    seed = options["seed"]
    batches = []
    for start, images in generate(bundle, count, seed, options["batch"], config, options["label"],
                                  device=options["device"]):
        images = images.cpu().permute(0, 2, 3, 1).numpy()
        for offset, image in enumerate(images):
            pil_image(image).save(out / f"{seed + start + offset:06d}.png")
        batches.append(images)
    images = np.concatenate(batches)
    np.savez(out / "samples.npz", arr_0=images, seeds=np.arange(seed, seed + count))
    grid_image(images[:grid_count]).save(out / "grid.png")
    provenance = {"checkpoint": str(Path(checkpoint).resolve()), "ema": (getattr(bundle, "info", None) or {}).get("ema"),
                  "num_samples": count,
                  "guide": str(Path(guide).resolve()) if guide else None, "guide_ema": guide_ema,
                  "seeds": [seed, seed + count - 1], "label": options["label"], "sampler": config.provenance(),
                  "autoencoder": bundle.decoder.info if getattr(bundle, "decoder", None) else None,
                  "info": {k: str(v) for k, v in (getattr(bundle, "info", {}) or {}).items()}}
    (out / "samples.json").write_text(json_text(provenance, indent=2) + "\n")
    click.echo(f"wrote {count} samples, grid.png and samples.npz to {out}")
