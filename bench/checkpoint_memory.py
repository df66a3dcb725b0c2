"""What @checkpoint (the examples/diffc-checkpoint plug-in) saves and costs on DiT-S/2, side by side.

Memory = bytes kept for backward after the forward (autograd's saved tensors plus the inputs the checkpoints
hold, each storage once: diffc_checkpoint.memory), and on CUDA torch.cuda.max_memory_allocated of a step.
Time = forward + backward of the same batch, plain and checkpointed runs interleaved, medians.

    pip install ./examples/diffc-checkpoint
    python bench/checkpoint_memory.py [--model DiT_S_2] [--batch 4] [--repeat 5] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from timing import timed  # noqa: E402

from diffc.compiler import build_model_from_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def build_pair(model: str, device: str):
    try:
        from diffc_checkpoint.memory import kept_for_backward
    except ImportError:
        sys.exit("install the plug-in first: pip install ./examples/diffc-checkpoint")
    where = ROOT / "specs" / "dit.diffspec"
    text = where.read_text() + (f"\nmodel Plain = {model}\n"
                                f"model Checkpointed = {model} with {{\n  @checkpoint blocks\n}}\n")
    where = str(where)
    torch.manual_seed(0)
    plain = build_model_from_text(text, where, "Plain", device=device)
    ckpt = build_model_from_text(text, where, "Checkpointed", device=device)
    ckpt.module.load_state_dict(plain.module.state_dict())
    return plain, ckpt, kept_for_backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="DiT_S_2")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    plain, ckpt, kept_for_backward = build_pair(args.model, args.device)
    interface = plain.interface
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, *interface.sample_shape, generator=gen).to(args.device)
    t = torch.randint(0, 1000, (args.batch,), generator=gen).float().to(args.device)
    y = torch.randint(0, 1000, (args.batch,), generator=gen).to(args.device)

    def step(built):
        def run():
            pred, _ = built.module(x, t, {"y": y})
            pred.square().mean().backward()
        return run

    kept = {}
    for name, built in (("plain", plain), ("checkpoint", ckpt)):
        kept[name], (pred, _) = kept_for_backward(built, lambda b=built: b.module(x, t, {"y": y}))
        pred.square().mean().backward()
        built.module.zero_grad(set_to_none=True)
    times = {"plain": [], "checkpoint": []}
    peaks = {"plain": [], "checkpoint": []}
    for _ in range(args.repeat):                       # interleaved, so load on the machine hits both alike
        for name, built in (("plain", plain), ("checkpoint", ckpt)):
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times[name].append(timed(step(built), args.device))
            if args.device == "cuda":
                peaks[name].append(torch.cuda.max_memory_allocated())
            built.module.zero_grad(set_to_none=True)
    params = sum(p.numel() for p in plain.module.parameters())
    tp, tc = statistics.median(times["plain"]), statistics.median(times["checkpoint"])
    print(f"{args.model} ({params / 1e6:.1f}M parameters), batch {args.batch}, {args.device}, "
          f"{args.repeat} interleaved repeats")
    print(f"kept for backward: plain {kept['plain'] / 2**20:.1f} MiB, @checkpoint blocks "
          f"{kept['checkpoint'] / 2**20:.1f} MiB -> {kept['checkpoint'] / kept['plain']:.3f}x "
          f"({1 - kept['checkpoint'] / kept['plain']:.1%} saved)")
    print(f"forward+backward: plain {tp * 1e3:.0f} ms, @checkpoint blocks {tc * 1e3:.0f} ms -> {tc / tp:.2f}x")
    if peaks["plain"]:
        pp, pc = max(peaks["plain"]), max(peaks["checkpoint"])
        print(f"CUDA peak allocated: plain {pp / 2**20:.0f} MiB, @checkpoint {pc / 2**20:.0f} MiB -> {pc / pp:.3f}x")


if __name__ == "__main__":
    main()
