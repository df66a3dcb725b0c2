"""Multi-stage DDPM++ at the paper's size (CIFAR-10: encoder 128, decoders 192/128/16) against the single-decoder
DDPM++ with the same encoder: MACs per sample and training step time, side by side, plus where the time goes.

    python bench/multistage_cost.py [--batch 16] [--repeat 5] [--profile]

MACs per sample are counted per stage (every sample forced into that stage) and averaged two ways: over the
EDM training distribution of sigma (log-normal, P_mean -1.2, P_std 1.2: what a training step costs) and over
the stage intervals' lengths in DPM-Solver time t (how the paper reports cost). Step time: forward + backward
of one batch with sigma drawn from the training distribution, both models interleaved --repeat times.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from timing import timed  # noqa: E402

from diffc.compiler import build_model, build_model_from_text  # noqa: E402
from diffc.compiler.summary import count_macs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs/multistage_unet.diffspec"
STAGE_LINE = "  @stage(boundaries = [logsnr(-1.84), logsnr(-4.0)], widths = widths) decoder {"
P_MEAN, P_STD = -1.2, 1.2
PAPER_T = (0.442, 0.631)          # DPM-Solver stage boundaries in t (multistage.md)


def single_decoder_text() -> str:
    """The same spec with the @stage region replaced by one plain decoder of the encoder's width (DDPM++)."""
    text = SPEC.read_text()
    if STAGE_LINE not in text:
        raise SystemExit(f"{SPEC} changed: cannot find its @stage line to build the single-decoder model")
    return text.replace(STAGE_LINE, "  stage_width = base\n  decoder {")


def stage_weights(boundaries_logsnr) -> list[float]:
    """P(stage) under the EDM log-normal sigma: stage s holds sigma in (sigma_{s}, sigma_{s+1}]."""
    sigmas = [math.exp(-b / 2) for b in boundaries_logsnr]
    cdf = [0.5 * (1 + math.erf((math.log(s) - P_MEAN) / (P_STD * math.sqrt(2)))) for s in sigmas]
    edges = [0.0, *cdf, 1.0]
    return [b - a for a, b in zip(edges, edges[1:])]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="top operators of the multi-stage step")
    args = parser.parse_args()
    torch.manual_seed(0)
    multi = build_model(SPEC, "MultistageDDPMpp")
    single = build_model_from_text(single_decoder_text(), str(SPEC), "MultistageDDPMpp", folder=SPEC.parent)
    boundaries = multi.compiled.ir.stage_regions[0]["boundaries"]
    train_w = stage_weights(boundaries)
    paper_w = [PAPER_T[0], PAPER_T[1] - PAPER_T[0], 1 - PAPER_T[1]]
    meta_multi = build_model(SPEC, "MultistageDDPMpp", device="meta").module
    meta_single = build_model_from_text(single_decoder_text(), str(SPEC), "MultistageDDPMpp", device="meta",
                                        folder=SPEC.parent).module
    per_stage = [count_macs(meta_multi, multi.interface, stage=s)[""] for s in range(3)]
    base = count_macs(meta_single, single.interface)[""]
    params = [sum(p.numel() for p in m.module.parameters()) for m in (multi, single)]
    print(f"multi-stage DDPM++ {params[0] / 1e6:.1f} M params, single-decoder DDPM++ {params[1] / 1e6:.1f} M params")
    print(f"GMACs per sample: single {base / 1e9:.2f}; multi-stage per stage "
          + " / ".join(f"{m / 1e9:.2f}" for m in per_stage))
    for label, w in (("EDM training sigma", train_w), ("paper (interval length in t)", paper_w)):
        avg = sum(wi * m for wi, m in zip(w, per_stage))
        print(f"  weighted by {label:30} stages {' / '.join(f'{x:.3f}' for x in w)}: {avg / 1e9:.2f} GMACs, "
              f"ratio {avg / base:.3f}")

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, generator=gen)
    sigma = (P_MEAN + P_STD * torch.randn(args.batch, generator=gen)).exp()
    models = {"multi": multi.module.train(), "single": single.module.train()}

    def step(module):
        out, _ = module(x, sigma)
        out.square().mean().backward()

    for module in models.values():
        step(module)
    times = {k: [] for k in models}
    for _ in range(args.repeat):
        for key, module in models.items():
            times[key].append(timed(lambda: step(module), "cpu"))
    ratios = [a / b for a, b in zip(times["multi"], times["single"])]
    tm, ts = statistics.median(times["multi"]), statistics.median(times["single"])
    counts = torch.bincount((sigma.log() * -2 < torch.tensor(boundaries)[:, None]).sum(0), minlength=3).tolist()
    print(f"step (fwd+bwd, batch {args.batch}, stage counts {counts}, CPU {torch.get_num_threads()} threads, "
          f"{args.repeat} interleaved repeats): multi {tm * 1e3:.0f} ms, single {ts * 1e3:.0f} ms, "
          f"ratio {tm / ts:.3f} (per-repeat ratios {min(ratios):.3f}..{max(ratios):.3f})")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step(models["multi"])
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
