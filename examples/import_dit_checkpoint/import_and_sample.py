"""Import a released DiT checkpoint into diffc and sample from it, through the Python API.

The released DiT-XL/2 256x256 file (https://dl.fbaipublicfiles.com/DiT/models/DiT-XL-2-256x256.pt) is a bare
state_dict of the EMA weights; a DiT/SiT/LayerSync/DTR training checkpoint {"model", "ema", "opt", "args"} works
the same (--weights ema|model). Nothing pickled in the file is run. The same job on the command line:

    diffc import-weights specs/dit.diffspec DiT-XL-2-256x256.pt --model DiT_XL_2 -o dit_xl2.pt
    diffc sample dit_xl2.pt --vae sd-vae-ft-mse/ --class 207 --guidance 4 --guidance-channels 3 --out samples/

Run:  python examples/import_dit_checkpoint/import_and_sample.py DiT-XL-2-256x256.pt --vae sd-vae-ft-mse/ --out samples/
"""
import argparse
from pathlib import Path

import numpy as np

from diffc.sampling.generate import SamplerConfig, generate
from diffc.sampling.images import grid_image
from diffc.weights import load_released

ROOT = Path(__file__).resolve().parents[2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="the released file (bare state_dict or training checkpoint)")
    parser.add_argument("--spec", default=str(ROOT / "specs" / "dit.diffspec"))
    parser.add_argument("--model", default="DiT_XL_2", help="the spec's model the file was trained as")
    parser.add_argument("--which", default="ema", choices=["ema", "model"], help="weights of a training checkpoint")
    parser.add_argument("--vae", default=None, help="diffusers AutoencoderKL folder (sd-vae-ft-mse) for latent models")
    parser.add_argument("--class", dest="label", type=int, default=207, help="ImageNet class (207: golden retriever)")
    parser.add_argument("--cfg", type=float, default=4.0, help="guidance scale (DiT sample.py: 4.0)")
    parser.add_argument("--steps", type=int, default=250, help="DDPM steps (DiT: 250)")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--out", default="samples")
    args = parser.parse_args(argv)

    bundle = load_released(args.spec, args.weights, args.model, args.which, vae=args.vae)
    # DiT's sample.py: 250 DDPM steps, learned variance, guidance on channels 0-2 (forward_with_cfg), no clipping.
    config = SamplerConfig("ddpm", steps=args.steps, guidance=args.cfg, guidance_channels=3)
    images = np.concatenate([batch.permute(0, 2, 3, 1).numpy()
                             for _, batch in generate(bundle, args.n, seed=0, config=config, labels=args.label)])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "samples.npz", arr_0=images)
    grid_image(images).save(out / "grid.png")
    print(f"{bundle.info['model_name']}: {len(images)} samples of class {args.label} in {out}")


if __name__ == "__main__":
    main()
