"""The method study: train the baseline and each method (DTR, LayerSync, multi-stage, EDM2 MP) on the
built-in digits at CPU scale for a fixed image budget, several seeds each, evaluate FD (the Frechet distance of
digits-CNN features) at several points, and write a plot (FD vs images seen, seed spread) and a table.

    python bench/study.py                       # the documented run (~30 min on 2 CPU cores)
    python bench/study.py --images 2048 --evals 1 --seeds 0 --samples 64      # a smoke run

Results go to --out (default docs/study): study.json, study.md (table), study.png (plot), runs/.
Runs resume: re-running the command continues where it stopped (each point is cached in study.json).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = {   # name -> (spec, model, recipe)
    "baseline": ("specs/study.diffspec", "Baseline", "recipes/study_ddpm.yaml"),
    "dtr": ("specs/study.diffspec", "DTR", "recipes/study_ddpm.yaml"),
    "layersync": ("specs/study.diffspec", "LayerSync", "recipes/study_ddpm.yaml"),
    "multistage": ("specs/study.diffspec", "MultiStage", "recipes/study_ddpm.yaml"),
    "edm2": ("specs/edm2_tiny.diffspec", None, "recipes/study_edm2.yaml"),
}
SAMPLERS = {"ddpm": ("ddim", 25), "edm": ("heun", 13), "flow": ("ode", 25)}


def run_point(method, seed, images, args, results):
    """Train `method` with `seed` up to `images` (resuming) and return the FD there (cached)."""
    key = f"{method}/{seed}/{images}"
    if key in results["points"]:
        return results["points"][key]
    import torch

    from diffc.compiler import build_model
    from diffc.evaluation.evaluate import evaluate_bundle
    from diffc.evaluation.names import headline
    from diffc.sampling.generate import SamplerConfig
    from diffc.checkpoints import load_for_inference
    from diffc.training.loop import train
    from diffc.training.recipe_loader import parse_recipe
    spec, model, recipe_path = METHODS[method]
    text = (ROOT / recipe_path).read_text() + f"\nseed: {seed}\nduration: {args.images}\n" \
        f"checkpoint: {{every: {args.images // args.evals}, keep: 1}}\n"
    recipe = parse_recipe(text, recipe_path)
    torch.manual_seed(seed)
    built = build_model(ROOT / spec, model)
    run_dir = Path(args.out) / "runs" / f"{method}-s{seed}"
    started = time.time()
    train(built, recipe, run_dir, recipe_text=text, recipe_name=recipe_path, base_dir=ROOT, stop_at=images,
          progress=False)
    train_seconds = time.time() - started
    bundle = load_for_inference(run_dir, ema=None)
    sampler, steps = SAMPLERS[bundle.objective.family]
    result = evaluate_bundle(bundle, reference="builtin", num_samples=args.samples, extractor="auto",
                             config=SamplerConfig(sampler=sampler, steps=steps), seed=10_000 * seed,
                             progress=False)
    point = {"method": method, "seed": seed, "images": images, "train_seconds": train_seconds,
             "fid": headline(result)[2], "sampler": f"{sampler} {steps}",
             "extractor": result["provenance"]["extractor"]["name"]}
    results["points"][key] = point
    return point


def write_outputs(results, args):
    out = Path(args.out)
    (out / "study.json").write_text(json.dumps(results, indent=2) + "\n")
    by = {}
    for p in results["points"].values():
        by.setdefault(p["method"], {}).setdefault(p["images"], []).append(p["fid"])
    lines = ["| method | " + " | ".join(f"FD @ {i // 1024}Ki" for i in results["eval_images"]) + " |",
             "|---|" + "---|" * len(results["eval_images"])]
    for method in args.methods:
        cells = []
        for i in results["eval_images"]:
            fids = by.get(method, {}).get(i, [])
            cells.append(f"{statistics.mean(fids):.1f} ± {statistics.pstdev(fids):.1f} (n={len(fids)})" if fids else "–")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    s = results["settings"]
    lines.append(f"\nFD (digits-CNN features; mean ± std over seeds), {s['samples']} samples per "
                 f"point, {s['images'] // 1024}Ki training images per run; `python bench/study.py`.")
    (out / "study.md").write_text("\n".join(lines) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in args.methods:
        xs = sorted(by.get(method, {}))
        if not xs:
            continue
        mean = [statistics.mean(by[method][x]) for x in xs]
        lo = [min(by[method][x]) for x in xs]
        hi = [max(by[method][x]) for x in xs]
        ax.plot([x / 1024 for x in xs], mean, marker="o", label=method)
        ax.fill_between([x / 1024 for x in xs], lo, hi, alpha=0.2)
    ax.set_xlabel("training images seen (Ki)")
    ax.set_ylabel("FD, digits-CNN features (lower is better)")
    ax.set_title(f"diffc method study: digits 16x16, {len(args.seeds)} seeds (band = min..max)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "study.png", dpi=120)
    plt.close(fig)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=21 * 1024, help="training images per run")
    parser.add_argument("--evals", type=int, default=3, help="evaluation points per run (evenly spaced)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=300, help="generated samples per FID")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", default=str(ROOT / "docs" / "study"))
    args = parser.parse_args()
    if args.images % args.evals:
        sys.exit("--images must be a multiple of --evals")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    points = [args.images * (k + 1) // args.evals for k in range(args.evals)]
    cache = out / "study.json"
    results = json.loads(cache.read_text()) if cache.exists() else {}
    settings = {"images": args.images, "evals": args.evals, "samples": args.samples}
    if results.get("settings") != settings:
        results = {"settings": settings, "points": {}}
    results["eval_images"] = points
    started = time.time()
    for method in args.methods:
        for seed in args.seeds:
            for images in points:
                p = run_point(method, seed, images, args, results)
                print(f"{method:10} seed {seed}  {images // 1024:4d}Ki images  FID {p['fid']:8.2f}  "
                      f"({time.time() - started:6.0f}s elapsed)", flush=True)
                write_outputs(results, args)
    print(write_outputs(results, args))
    print(f"wrote {out / 'study.md'}, {out / 'study.png'}, {out / 'study.json'} in {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
