"""Compiled DiT vs a hand-written DiT of the same architecture and weights: forward and forward+backward
time ratios (goal <= 1.00), measured side by side in one run with interleaved repetitions; the noise band is the
interquartile range of the per-repetition paired ratios.

    python bench/compiled_vs_handwritten.py [--models DiT_tiny DiT_S_2] [--batch 8] [--repeat 20] [--device cpu]
        [--bf16] [--compile]      # GPU options: bf16 autocast and torch.compile on both models
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from handwritten_dit import HandDiT  # noqa: E402
from timing import timed  # noqa: E402

from diffc.compiler import build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pair(model: str, device: str):
    built = build_model(ROOT / "specs/dit.diffspec", model, device=device)
    a = built.compiled.ir.arguments
    out = built.interface.out_channels
    hand = HandDiT(a["depth"], a["width"], a["heads"], a["patch"], a["size"], a["channels"], a["classes"], out).to(device)
    hand.load_state_dict(built.module.state_dict())
    with torch.no_grad():      # non-zero adaLN so both do the full computation
        for p in list(built.module.parameters()):
            p.normal_(0, 0.02)
        hand.load_state_dict(built.module.state_dict())
    return built, hand


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["DiT_tiny", "DiT_S_2"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"device {args.device}, batch {args.batch}, {args.repeat} interleaved repetitions, median times"
          f"{', bf16 autocast' if args.bf16 else ''}{', torch.compile' if args.compile else ''}")
    print(f"{'model':10} {'fwd compiled':>13} {'fwd hand':>10} {'ratio':>7} {'f+b compiled':>13} {'f+b hand':>10} {'ratio':>7}")
    for name in args.models:
        built, hand = pair(name, args.device)
        iface = built.interface
        x = torch.randn(args.batch, *iface.sample_shape, device=args.device)
        t = torch.randint(0, 1000, (args.batch,), device=args.device)
        y = torch.randint(0, iface.conditions[0].classes, (args.batch,), device=args.device)
        net = built.module
        with torch.no_grad():
            diff = (net(x, t, {"y": y})[0] - hand(x, t, y)).abs().max().item()
        run_c = lambda: net(x, t, {"y": y})[0]
        run_h = lambda: hand(x, t, y)
        if args.compile:
            run_c, run_h = torch.compile(run_c), torch.compile(run_h)
        ctx = torch.autocast(args.device, torch.bfloat16) if args.bf16 else torch.autocast(args.device, enabled=False)

        def fwd(fn):
            with torch.no_grad(), ctx:
                fn()

        def fwd_bwd(fn):
            with ctx:
                out = fn()
            out.float().square().mean().backward()

        results = {}
        for label, step in (("fwd", fwd), ("fb", fwd_bwd)):
            for fn in (run_c, run_h):
                step(fn)                                 # warm-up
            tc, th = [], []
            for _ in range(args.repeat):
                tc.append(timed(lambda: step(run_c), args.device))
                th.append(timed(lambda: step(run_h), args.device))
            paired = sorted(c / h for c, h in zip(tc, th))
            band = (paired[len(paired) // 4], paired[(3 * len(paired)) // 4])
            results[label] = (statistics.median(tc), statistics.median(th), band)
        (fc, fh, fband), (bc, bh, bband) = results["fwd"], results["fb"]
        print(f"{name:10} {fc * 1e3:11.2f}ms {fh * 1e3:8.2f}ms {fc / fh:7.3f} {bc * 1e3:11.2f}ms {bh * 1e3:8.2f}ms "
              f"{bc / bh:7.3f}   (noise band fwd {fband[0]:.3f}..{fband[1]:.3f}, f+b {bband[0]:.3f}..{bband[1]:.3f}; "
              f"max |output difference| {diff:.1e})")


if __name__ == "__main__":
    main()
