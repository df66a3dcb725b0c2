"""`diffc eval CKPT`: FID, KID, precision/recall and IS via torch-fidelity, written as JSON with provenance."""
from __future__ import annotations

import click

from diffc.commands.common import resolve_device
from diffc.commands.sample import sampler_config, sampler_options


@click.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.option("--ref", "reference", default="builtin", show_default=True,
              help="reference images: 'builtin' (digits), an image folder, or an .npz")
@click.option("--n", "count", type=click.IntRange(min=4), default=1000, show_default=True,
              help="number of generated samples")
@click.option("--extractor", type=click.Choice(["auto", "digits", "inception"]), default="auto", show_default=True,
              help="auto: the digits CNN for --ref builtin, Inception-v3 otherwise")
@click.option("--weights", type=click.Path(), default=None, help="feature-extractor weights file")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="result JSON (default: next to the checkpoint)")
@sampler_options
def eval_cmd(checkpoint, reference, count, extractor, weights, out, **options):
    """Compare samples of CHECKPOINT against a reference set; write metrics and provenance as JSON."""
    from diffc.evaluation.evaluate import evaluate_checkpoint
    options["device"] = resolve_device(options["device"])

    result = evaluate_checkpoint(
        checkpoint, ema=options["ema"], out=out, reference=reference, num_samples=count, extractor=extractor,
        weights=weights, config=sampler_config(options), seed=options["seed"], batch_size=options["batch"],
        labels=options["label"], device=options["device"], vae=options["vae"])
    for name, value in result["metrics"].items():
        click.echo(f"{name:32s} {value:.6g}")
    click.echo(f"wrote {result['path']}")
