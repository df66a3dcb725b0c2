"""Use a compiled diffc model from plain Python, in your own training loop.

The compiled module is an ordinary torch.nn.Module called as `pred, aux = model(x, t, cond)` (diffc/interface.py):
x [N, C, H, W] noisy samples, t the noise level the spec declares (here DDPM timesteps 0..999), cond a dict of
conditions by name (labels [N] long; a label equal to `classes` is the null label), pred the output (DiT with
learned variance: 2C channels, eps first), aux the method taps (e.g. LayerSync's loss term, DTR needs nothing).
Everything else here is yours: data, noise schedule, loss, optimiser. This one trains DiT_tiny with DTR on the
built-in digits with the plain DDPM epsilon loss (Ho et al. 2020, Eq. 14).
"""
import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from diffc.compiler import build_model

SPECS = Path(__file__).resolve().parents[2] / "specs"


def digits(resolution: int):
    """scikit-learn's 8x8 digits, upsampled to `resolution`, in [-1, 1], with their labels."""
    from sklearn.datasets import load_digits
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32)[:, None] / 16
    images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return images * 2 - 1, torch.tensor(data.target)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(SPECS / "dit_dtr.diffspec"))
    parser.add_argument("--model", default="DiT_tiny_DTR")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="my_model.pt", help="where the trained state_dict goes")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    built = build_model(args.spec, model=args.model)
    model, interface = built.module, built.interface
    channels, height, _ = interface.sample_shape
    label = next(c.name for c in interface.conditions if c.kind == "label")
    images, labels = digits(height)

    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)          # DDPM's linear schedule
    alpha_bar = torch.cumprod(1 - betas, 0).float()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    for step in range(args.steps):
        pick = torch.randint(len(images), (args.batch,))
        x0, y = images[pick], labels[pick]
        t = torch.randint(1000, (args.batch,))
        noise = torch.randn_like(x0)
        a = alpha_bar[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred, aux = model(x_t, t, {label: y})
        loss = F.mse_loss(pred[:, :channels], noise)
        for name, weight in interface.aux_losses.items():                  # method loss terms, if the spec has any
            loss = loss + weight * aux[name]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}", flush=True)
    torch.save(model.state_dict(), args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
