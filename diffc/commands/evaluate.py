"""`diffc eval CKPT`: FID, KID, precision/recall and IS via torch-fidelity, written as JSON with provenance."""
from __future__ import annotations

import click

from diffc.commands.common import resolve_device
from diffc.commands.sample import load_for_options, sampler_config, sampler_options

QUICK_SAMPLES, FULL_SAMPLES = 1000, 10000


@click.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.option("--ref", "reference", default="builtin", show_default=True,
              help="reference images: 'builtin' (digits), an image folder, or an .npz")
@click.option("--n", "count", type=click.IntRange(min=4), default=None,
              help=f"number of generated samples (default {QUICK_SAMPLES}; --full: {FULL_SAMPLES})")
@click.option("--full", is_flag=True,
              help=f"the full protocol: {FULL_SAMPLES} samples with the family's reference sampler at its own steps "
                   "(DDPM 250 ancestral steps, EDM Heun 32, flow ODE 50) unless --sampler/--steps say otherwise")
@click.option("--extractor", type=click.Choice(["auto", "digits", "inception"]), default="auto", show_default=True,
              help="auto: the digits CNN for --ref builtin, Inception-v3 otherwise")
@click.option("--weights", type=click.Path(), default=None, help="feature-extractor weights file")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="result JSON (default: next to the checkpoint)")
@sampler_options
def eval_cmd(checkpoint, reference, count, full, extractor, weights, out, **options):
    """Compare samples of CHECKPOINT against a reference set; write metrics and provenance as JSON.

    By default the samples are drawn as the run's training grids are (its EMA profile, sampler, steps and guidance):
    1000 samples of the default run (DDIM 50 steps, guidance 2) take about 2 minutes on 2 CPU cores. --full runs the
    papers' protocol: 10000 samples with the reference sampler (DDPM: 250 ancestral steps), about 1.5 hours there.
    """
    from diffc.evaluation.evaluate import evaluate_checkpoint
    from diffc.sampling.defaults import REFERENCE_SAMPLER
    options["device"] = resolve_device(options["device"])
    bundle = load_for_options(checkpoint, options)
    if full and options["sampler"] is None:
        options["sampler"] = REFERENCE_SAMPLER[bundle.objective.family]
    count = count or (FULL_SAMPLES if full else QUICK_SAMPLES)
    result = evaluate_checkpoint(
        checkpoint, out=out, bundle=bundle, reference=reference, num_samples=count, extractor=extractor,
        weights=weights, config=sampler_config(options, bundle), seed=options["seed"], batch_size=options["batch"],
        labels=options["label"], device=options["device"], vae=options["vae"])
    for name, value in result["metrics"].items():
        click.echo(f"{name:32s} {value:.6g}")
    click.echo(f"wrote {result['path']}")
