"""`diffc ema RUN --sigma-rel S ...`: post-hoc EMA reconstruction into a checkpoint for sampling."""
from __future__ import annotations

import click


@click.command("ema", epilog="""\b
Example:
  diffc ema runs/dit_dtr-DiT --sigma-rel 0.08 --sigma-rel 0.12 --out phema.pt
  diffc sample phema.pt --ema phema-0.080""")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--sigma-rel", "sigma_rels", type=float, multiple=True, required=True, help="target EMA length(s)")
@click.option("--nimg", type=int, default=None, help="training time in images (default: the latest snapshot)")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="default: RUN/phema-{nimg}.pt")
def ema(run_dir, sigma_rels, nimg, out):
    """Reconstruct power-function EMA profiles from RUN/phema snapshots (EDM2 post-hoc EMA)."""
    from diffc.phema import write_reconstruction
    path = write_reconstruction(run_dir, sigma_rels, out, nimg)
    names = ", ".join(f"phema-{s:.3f}" for s in sigma_rels)
    click.echo(f"wrote {path} with EMA profiles {names}")
