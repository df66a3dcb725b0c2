"""One training-throughput measurement for bench/gpu.sh: bf16 autocast (+ torch.compile) steps of one model.

    python bench/gpu_train.py --model dit_xl2 --impl spec --compile [--batch 256] [--steps 20] --out results.jsonl
    python bench/gpu_train.py --model dit_xl2 --smoke ...       # CPU, the tiny model, compile backend "eager"

--impl spec: the module diffc compiles from the spec; hand: the hand-written reference (bench/handwritten_dit.py,
DiT only) with the same weights. Appends one JSON line: img/s, step ms, peak memory, model FLOPs per image,
MFU against the device's bf16 dense peak (H100/H200/A100 detected from the device name).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from handwritten_dit import HandDiT  # noqa: E402

from diffc.compiler import build_model  # noqa: E402
from diffc.compiler.summary import count_macs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = {  # name -> (spec, model, smoke model, batch)
    "dit_xl2": ("specs/dit.diffspec", "DiT_XL_2", "DiT_tiny", 256),
    "edm2_xs": ("specs/edm2_img512_xs.diffspec", "edm2_img512_xs", None, 64),
}
SMOKE_SPECS = {"dit_xl2": "specs/dit.diffspec", "edm2_xs": "specs/edm2_tiny.diffspec"}
PEAK_BF16 = [("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12)]   # dense, no sparsity


def device_peak(device: str) -> tuple[str, float | None]:
    if device != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name()
    return name, next((peak for key, peak in PEAK_BF16 if key in name), None)


def make_model(args, device):
    spec, name, smoke_name, _ = MODELS[args.model]
    if args.smoke:
        spec, name = SMOKE_SPECS[args.model], smoke_name
    built = build_model(ROOT / spec, name, device=device)
    with torch.no_grad():              # non-zero weights everywhere, so both sides do the whole computation
        for p in built.module.parameters():
            p.normal_(0, 0.02)
    module = built.module
    if args.impl == "hand":
        if not args.model.startswith("dit"):
            raise SystemExit("--impl hand exists for DiT only (bench/handwritten_dit.py)")
        a = built.compiled.ir.arguments
        module = HandDiT(a["depth"], a["width"], a["heads"], a["patch"], a["size"], a["channels"], a["classes"],
                         built.interface.out_channels).to(device)
        module.load_state_dict(built.module.state_dict())
    return built, module


def batch_of(built, batch: int, device: str):
    iface = built.interface
    x = torch.randn(batch, *iface.sample_shape, device=device)
    if iface.noise.kind == "timestep":
        t = torch.randint(0, iface.noise.steps, (batch,), device=device).float()
    else:
        t = (-1.2 + 1.2 * torch.randn(batch, device=device)).exp()
    y = torch.randint(0, iface.conditions[0].classes, (batch,), device=device)
    return x, t, {iface.conditions[0].name: y}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), required=True)
    parser.add_argument("--impl", choices=("spec", "hand"), default="spec")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny model, compile backend 'eager'")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device (use --smoke for a CPU dry run)")
    torch.manual_seed(0)
    batch = args.batch or (2 if args.smoke else MODELS[args.model][3])
    built, module = make_model(args, device)
    meta = build_model(ROOT / (SMOKE_SPECS[args.model] if args.smoke else MODELS[args.model][0]),
                       built.model_name, device="meta")
    flops_per_image = 3 * 2 * count_macs(meta.module, meta.interface)[""]     # fwd + bwd = 3x forward FLOPs
    x, t, cond = batch_of(built, batch, device)
    y = next(iter(cond.values()))
    call = (lambda: module(x, t, y)) if args.impl == "hand" else (lambda: module(x, t, cond)[0])
    if args.compile:
        call = torch.compile(call, backend="eager" if args.smoke else "inductor")
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4, fused=device == "cuda")
    target = torch.randn(batch, built.interface.out_channels, *x.shape[2:], device=device)

    def step():
        with torch.autocast(device, dtype=torch.bfloat16):
            out = call()
        loss = (out.float() - target).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    start = time.perf_counter()
    for _ in range(args.warmup):
        loss = step()
    sync()
    warmup_s = time.perf_counter() - start
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    step_s = (time.perf_counter() - start) / args.steps
    if not math.isfinite(loss.item()):
        raise SystemExit("loss is not finite")
    name, peak = device_peak(device)
    achieved = flops_per_image * batch / step_s
    row = {"model": built.model_name, "impl": args.impl + ("+compile" if args.compile else ""), "device": name,
           "batch": batch, "img_s": batch / step_s, "step_ms": step_s * 1e3, "warmup_s": warmup_s,
           "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
           "tflops": achieved / 1e12, "mfu": achieved / peak if peak else None}
    with open(args.out, "a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
