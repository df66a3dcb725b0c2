"""`diffc stages DATA`: multi-stage boundaries by optimal-denoiser clustering (Zhang et al., CVPR 2024, Alg. 1)."""
from __future__ import annotations

from fractions import Fraction

import click


def _fraction(ctx, param, value: str) -> float:
    try:
        return float(Fraction(value))
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(f"expected a number or a fraction like 2/255, got {value!r}") from None


@click.command("stages", epilog="""\b
Example:
  diffc stages digits --k 3 --alpha 0.9
  diffc stages cifar10_train.npz --schedule edm --samples 4000""")
@click.argument("data")
@click.option("--k", "k", type=int, default=3, show_default=True, help="number of stages")
@click.option("--alpha", type=float, default=0.9, show_default=True, help="agreement threshold alpha_thr")
@click.option("--eta", default="2/255", show_default=True, callback=_fraction, help="per-pixel tolerance")
@click.option("--samples", type=int, default=2000, show_default=True, help="Monte Carlo triples (y, eps, t)")
@click.option("--schedule", type=click.Choice(["vp", "edm"]), default="vp", show_default=True,
              help="vp: VP-SDE beta in [0.1, 20]; edm: sigma log-linear in [0.002, 80]")
@click.option("--seed", type=int, default=0, show_default=True)
def stages(data, k, alpha, eta, samples, schedule, seed):
    """Cluster timesteps by how their optimal denoisers agree; DATA is `digits` or an .npz/.npy array file."""
    from diffc.stages_clustering import cluster, load_data
    if samples < 2:
        raise click.BadParameter(f"need at least 2 samples, got {samples}", param_hint="--samples")
    train = load_data(data)
    result = cluster(train, k=k, alpha=alpha, eta=eta, samples=samples, schedule=schedule, seed=seed)
    click.echo(f"{data}: {train.shape[0]} samples of {train.shape[1]} values; {samples} Monte Carlo draws, "
               f"schedule {schedule}, alpha {alpha:g}, eta {eta:.5f}")
    if result.overlap:
        click.echo("note: the clean-end and noise-end agreement intervals overlap; their overlap is the middle "
                   "stage (raise --alpha to separate them)")
    click.echo(f"{'boundary':>8} {'t':>8} {'sigma':>9} {'log-SNR':>8}")
    logsnrs = result.boundaries_logsnr()
    for i, (t, sigma, value) in enumerate(zip(result.boundaries_t, result.boundaries_sigma(), logsnrs), 1):
        click.echo(f"{i:>8} {t:>8.4f} {sigma:>9.4f} {value:>8.3f}")
    click.echo("paste into a spec:")
    click.echo(f"  @stage(boundaries = [{', '.join(f'logsnr({v:.2f})' for v in logsnrs)}])")
