"""`diffc ema RUN --sigma-rel S ...`: post-hoc EMA reconstruction into a checkpoint for sampling."""
from __future__ import annotations

from pathlib import Path

import click

from diffc.bounds import Bound
from diffc.commands.common import FiniteFloat, device_option, resolve_device


@click.command("ema", epilog="""\b
Example:
  diffc ema runs/dit_dtr-DiT --sigma-rel 0.08 --sigma-rel 0.12 --out phema.pt
  diffc sample phema.pt --ema phema-0.080""")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--sigma-rel", "sigma_rels", type=FiniteFloat(Bound(0, 0.2886, True, True, "an EMA length")),
              multiple=True, required=True, help="target EMA length(s)")
@click.option("--nimg", type=click.IntRange(min=0), default=None,
              help="training time in images (default: the latest snapshot)")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="default: RUN/phema-{nimg}.pt")
@click.option("--metric", type=click.Choice(["none", "fid"]), default="none", show_default=True,
              help="also evaluate each reconstructed profile (the Frechet distance: FD with digits-CNN features "
                   "for the built-in data, FID with Inception-v3 otherwise)")
@click.option("--samples", type=click.IntRange(min=4), default=1000, show_default=True,
              help="generated samples per metric")
@click.option("--reference", default="builtin", show_default=True,
              help="reference: builtin (digits held-out split) | builtin-train | builtin-all | folder | .npz")
@device_option
def ema(run_dir, sigma_rels, nimg, out, metric, samples, reference, device):
    """Reconstruct power-function EMA profiles from RUN/phema snapshots (EDM2 post-hoc EMA), and
    optionally sweep them with a metric to pick the EMA length."""
    from diffc.files import check_writable_folder
    from diffc.training.phema import write_reconstruction
    device = resolve_device(device)             # where the metric sweep samples
    check_writable_folder(Path(out).parent if out else run_dir)
    path = write_reconstruction(run_dir, sigma_rels, out, nimg)
    names = [f"phema-{s:.3f}" for s in sigma_rels]
    click.echo(f"wrote {path} with EMA profiles {', '.join(names)}")
    if metric == "none":
        return
    from diffc.evaluation.evaluate import evaluate_checkpoint
    from diffc.evaluation.names import headline
    rows = []
    for name, sigma_rel in zip(names, sigma_rels):
        result = evaluate_checkpoint(path, ema=name, num_samples=samples, reference=reference, progress=False,
                                     device=device)
        rows.append((sigma_rel, *headline(result), result["path"]))
    short = rows[0][1].upper().replace("_DIGITS_CNN", "")          # FID, or FD with the digits CNN
    click.echo(f"# {short}: {rows[0][2]}")
    click.echo(f"{'sigma_rel':>9}  {short:>9}  result")
    for sigma_rel, _, _, value, where in rows:
        click.echo(f"{sigma_rel:9.3f}  {value:9.3f}  {where}")
    best = min(rows, key=lambda r: r[3])
    click.echo(f"best: sigma_rel {best[0]:.3f} ({short} {best[3]:.3f})")
