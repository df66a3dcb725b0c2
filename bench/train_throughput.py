"""Training throughput: `diffc.training.loop.train` on the compiled DiT vs a plain hand-written loop, same model.

    python bench/train_throughput.py [--spec specs/dit_dtr.diffspec] [--steps 60] [--batch 64] [--device cpu]
    python bench/train_throughput.py --compile [--rounds 2]     # `diffc train --compile` against eager

Both sides train the same freshly compiled module with eps-prediction MSE, AdamW and a classic EMA on the digits
data; the diffc side additionally does what a real run does (reseeding, conditioning dropout, logging to
stats.jsonl, one checkpoint at the end). One run each; prints images/s and the ratio.

--compile instead times `diffc train` with and without torch.compile (inductor): the first 5 steps (which
include compiling), then steady-state images/s over --steps, eager and compiled runs interleaved --rounds
times; prints the compile time, the speedup and the run length from which compiling pays.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch
import torch._dynamo

from diffc.compiler import build_model
from diffc.schedules import alphas_cumprod
from diffc.training.loop import train
from diffc.training.recipe_loader import parse_recipe

RECIPE = """
objective:  {{kind: ddpm_eps, learned_variance: false}}
weighting:  {{kind: none}}
optimizer:  {{kind: adamw, lr: 1.0e-4, grad_clip: null}}
batch:      {batch}
duration:   {steps} steps
ema:        {{kind: classic, decay: 0.9999}}
checkpoint: {{every: 1000000 steps, keep: 1}}
sample:     {{every: null, n: 4, steps: 2}}
log:        {{every: 20 steps, tensorboard: false}}
"""


def plain_loop(module, interface, batch: int, steps: int, device: str) -> float:
    """A DiT-style hand-written loop: random t, eps-MSE, AdamW, EMA lerp. Returns images/s."""
    from sklearn.datasets import load_digits
    c, h, w = interface.sample_shape
    digits = torch.tensor(load_digits().images, dtype=torch.float32)[:, None] / 8 - 1
    images = torch.nn.functional.interpolate(digits, size=(h, w), mode="bilinear").to(device)
    labels = torch.tensor(load_digits().target).to(device)
    label_name = next((cd.name for cd in interface.conditions if cd.kind == "label"), None)
    abar = alphas_cumprod(interface.noise.schedule, interface.noise.steps).float().to(device)
    ema = copy.deepcopy(module).requires_grad_(False)
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4, weight_decay=0)
    start = None
    for step in range(steps + 5):
        if step == 5:
            start = time.perf_counter()
        idx = torch.randint(0, images.shape[0], (batch,), device=device)
        x0 = images[idx]
        t = torch.randint(0, interface.noise.steps, (batch,), device=device)
        eps = torch.randn_like(x0)
        a = abar[t].view(-1, 1, 1, 1)
        out, _ = module(a.sqrt() * x0 + (1 - a).sqrt() * eps, t.float(), {label_name: labels[idx]} if label_name else {})
        loss = (out[:, :c] - eps).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), module.parameters()):
                e.lerp_(p, 1 - 0.9999)
    return steps * batch / (time.perf_counter() - start)


def diffc_rate(built, batch: int, steps: int, device: str, compile: bool) -> tuple[float, float]:
    """(seconds of the first 5 steps, steady images/s over `steps` more) of `diffc train` in a fresh run dir."""
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        train(built, parse_recipe(RECIPE.format(batch=batch, steps=5), "<bench>"), run_dir, device=device,
              progress=False, compile=compile)
        first = time.perf_counter() - start
        recipe = parse_recipe(RECIPE.format(batch=batch, steps=steps + 5), "<bench>")
        start = time.perf_counter()
        train(built, recipe, run_dir, device=device, progress=False, compile=compile)
        return first, steps * batch / (time.perf_counter() - start)


def compare_compile(built, args) -> None:
    rows = {False: [], True: []}
    for _ in range(args.rounds):
        for use_compile in (False, True):
            torch._dynamo.reset()          # each compiled round pays its own compilation
            rows[use_compile].append(diffc_rate(copy.deepcopy(built), args.batch, args.steps, args.device, use_compile))
    (eager_first, eager), (comp_first, comp) = [
        (statistics.median(r[0] for r in rows[c]), statistics.median(r[1] for r in rows[c])) for c in (False, True)]
    compile_s = comp_first - eager_first
    print(f"model {built.model_name}, batch {args.batch}, {args.steps} timed steps, device {args.device}, "
          f"{torch.get_num_threads()} threads, {args.rounds} interleaved rounds (medians)")
    print(f"eager    : first 5 steps {eager_first:7.1f} s, steady {eager:8.1f} img/s   rounds: "
          + ", ".join(f"{r[1]:.1f}" for r in rows[False]))
    print(f"compiled : first 5 steps {comp_first:7.1f} s, steady {comp:8.1f} img/s   rounds: "
          + ", ".join(f"{r[1]:.1f}" for r in rows[True]))
    print(f"compile time ~{compile_s:.1f} s; steady speedup {comp / eager:.3f}x")
    if comp > eager:
        breakeven = compile_s / (1 / eager - 1 / comp)
        print(f"compiling pays after ~{breakeven:,.0f} images ({breakeven / args.batch:,.0f} steps of {args.batch})")
    else:
        print("compiling does not pay on this device")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/dit_dtr.diffspec")
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="diffc train with vs without torch.compile")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    built = build_model(args.spec, model=args.model)
    if args.compile:
        return compare_compile(built, args)
    fresh = copy.deepcopy(built.module)
    plain = plain_loop(copy.deepcopy(fresh).to(args.device).train(), built.interface, args.batch, args.steps, args.device)
    with tempfile.TemporaryDirectory() as run_dir:
        warm = parse_recipe(RECIPE.format(batch=args.batch, steps=5), "<bench>")
        train(built, warm, run_dir, device=args.device, progress=False)
        recipe = parse_recipe(RECIPE.format(batch=args.batch, steps=args.steps + 5), "<bench>")
        start = time.perf_counter()
        train(built, recipe, run_dir, device=args.device, progress=False)
        diffc_rate = args.steps * args.batch / (time.perf_counter() - start)
    params = sum(p.numel() for p in fresh.parameters())
    print(f"model {built.model_name} ({params:,} params), batch {args.batch}, {args.steps} timed steps, "
          f"device {args.device}, {torch.get_num_threads()} threads")
    print(f"plain hand-written loop: {plain:8.1f} img/s")
    print(f"diffc train:             {diffc_rate:8.1f} img/s  (includes resume + final checkpoint)")
    print(f"ratio diffc / plain:     {diffc_rate / plain:8.3f}")


if __name__ == "__main__":
    main()
