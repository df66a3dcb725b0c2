"""Training throughput: `diffc.training.loop.train` on the compiled DiT vs a plain hand-written loop, same model.

    python bench/train_throughput.py [--spec specs/dit_dtr.diffspec] [--steps 60] [--batch 64] [--device cpu]

Both sides train the same freshly compiled module with eps-prediction MSE, AdamW and a classic EMA on the digits
data; the diffc side additionally does what a real run does (reseeding, conditioning dropout, logging to
stats.jsonl, one checkpoint at the end). One run each; prints images/s and the ratio.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/dit_dtr.diffspec")
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    built = build_model(args.spec, model=args.model)
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
