"""What each method annotation costs: training-step time and peak memory of a spec with the method
against the same spec without it, measured side by side (interleaved repetitions, medians).

Step = forward on a batch with mixed noise levels + MSE (+ weighted aux losses) + backward + AdamW step.
Memory = bytes of the tensors autograd saves for backward (the activation peak on CPU), and on CUDA
torch.cuda.max_memory_allocated.

    python bench/method_overhead.py [--batch 32] [--repeat 15] [--device cpu] [--bf16] [--compile]
    python bench/method_overhead.py --sit-s2 --batch 8 --repeat 5     # @sync on SiT-S/2
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from timing import timed  # noqa: E402

from diffc.compiler import build_model, build_model_from_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MP_NET = """model Plain(width = 32) {
  input x: sample[1, 16, 16]
  input t: sigma
  h = conv(x, out = width)
  h = conv(silu(h), out = width) + h
  h = conv(silu(h), out = width) + h
  return conv(silu(h), out = 1)
}
model MP = Plain with {
  @mp model
}
"""


def sit_s2_pair():
    """@sync at a real model size: SiT-S/2 (33M parameters) with and without LayerSync."""
    return ("@sync (LayerSync), SiT-S/2", (build_model(ROOT / "specs/sit_layersync.diffspec", "SiT_S_2"),
                                          build_model(ROOT / "specs/sit_layersync.diffspec", "SiT_S_2_LayerSync")))


def sync_loss_ms(built, batch_size: int, device: str, repeat: int = 20) -> float:
    """Wall time of the work @sync adds to a step: the cosine loss on the tapped features and its backward
    (its gradient joins the existing backward through the student's layers as one addition)."""
    import torch.nn.functional as F
    src_wire, _ = next(iter(built.compiled.ir.taps.values()))
    shape = (batch_size, *src_wire.node.out_shapes[src_wire.port])
    src = torch.randn(shape, device=device, requires_grad=True)
    dst = torch.randn(shape, device=device)

    def work():
        (-F.cosine_similarity(src, dst.detach(), dim=-1).mean()).backward()
    work()
    return 1e3 * statistics.median(timed(work, device) for _ in range(repeat))


def pairs():
    """(method, (without, with)) built models."""
    stage_text = (ROOT / "specs/multistage_unet.diffspec").read_text()
    unstaged, found = re.subn(r"@stage\(.*?\)\s*decoder \{", "decoder {\n    stage_width = widths[0]", stage_text,
                              count=1, flags=re.S)
    assert found == 1, "the multi-stage spec no longer has `@stage(...) decoder {`"
    return [
        ("@route (DTR)", (build_model(ROOT / "specs/dit.diffspec", "DiT_tiny"),
                          build_model(ROOT / "specs/dit_dtr.diffspec", "DiT_tiny_DTR"))),
        ("@sync (LayerSync)", (build_model(ROOT / "specs/sit_layersync.diffspec", "SiT_tiny"),
                               build_model(ROOT / "specs/sit_layersync.diffspec", "SiT_tiny_LayerSync"))),
        ("@stage (multi-stage)", (build_model_from_text(unstaged, "unstaged.diffspec", "MultistageDDPMpp_tiny"),
                                  build_model(ROOT / "specs/multistage_unet.diffspec", "MultistageDDPMpp_tiny"))),
        ("@mp (EDM2 layers)", (build_model_from_text(MP_NET, "mp.diffspec", "Plain"),
                               build_model_from_text(MP_NET, "mp.diffspec", "MP"))),
    ]


def batch(iface, n, device):
    x = torch.randn(n, *iface.sample_shape, device=device)
    kind = iface.noise.kind
    if kind == "timestep":
        t = torch.randint(0, iface.noise.steps, (n,), device=device)
    elif kind == "time":
        t = torch.rand(n, device=device)
    else:
        t = torch.exp(torch.randn(n, device=device) * 1.2 - 1.2)     # EDM's log-normal sigma
    cond = {c.name: torch.randint(0, c.classes, (n,), device=device) for c in iface.conditions if c.kind == "label"}
    return x, t, cond


def make_step(built, n, device, bf16, compile_):
    module = built.module.to(device).train()
    forward = torch.compile(module) if compile_ else module
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
    x, t, cond = batch(built.interface, n, device)
    weights = built.interface.aux_losses

    def step():
        with torch.autocast(device, torch.bfloat16, enabled=bf16):
            pred, aux = forward(x, t, cond)
            loss = (pred.float()[:, : x.shape[1]] - x).square().mean()
            loss = loss + sum(w * aux[k] for k, w in weights.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def saved_bytes(step) -> int:
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--sit-s2", action="store_true", help="measure only @sync on SiT-S/2 (a real model size)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"device {args.device}, batch {args.batch}, {args.repeat} interleaved steps, median step time")
    print(f"{'method':22} {'without':>10} {'with':>10} {'time ratio':>11} {'saved MB w/o':>13} {'saved MB with':>14} {'mem ratio':>10}")
    for method, (base, other) in ([sit_s2_pair()] if args.sit_s2 else pairs()):
        steps = [make_step(b, args.batch, args.device, args.bf16, args.compile) for b in (base, other)]
        mem = [saved_bytes(s) for s in steps]                     # also warms both up
        if args.device == "cuda":
            peaks = []
            for s in steps:
                torch.cuda.reset_peak_memory_stats()
                s()
                peaks.append(torch.cuda.max_memory_allocated())
            mem = peaks
        times = [[], []]
        for _ in range(args.repeat):
            for i, s in enumerate(steps):
                times[i].append(timed(s, args.device))
        t0, t1 = statistics.median(times[0]), statistics.median(times[1])
        print(f"{method:22} {t0 * 1e3:8.1f}ms {t1 * 1e3:8.1f}ms {t1 / t0:11.3f} {mem[0] / 2**20:13.2f} "
              f"{mem[1] / 2**20:14.2f} {mem[1] / mem[0]:10.3f}")
        if method.startswith("@sync"):
            extra = sync_loss_ms(other, args.batch, args.device)
            print(f"{'':22} the @sync loss alone (forward+backward): {extra:.2f} ms = "
                  f"{100 * extra / (t0 * 1e3):.2f}% of the step without it")
    print("baselines: DiT_tiny | SiT_tiny | the multi-stage U-Net with one decoder (widest) | the same conv net "
          "without @mp; memory on CPU = bytes saved for backward")


if __name__ == "__main__":
    main()
