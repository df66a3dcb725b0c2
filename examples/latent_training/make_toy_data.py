"""Toy inputs for this example, made locally (nothing is downloaded): a tiny randomly initialised diffusers
AutoencoderKL saved to vae/ (4x downsampling, 4 latent channels, ~15k parameters) and images/<class>/*.png.

With a real autoencoder and data set, skip this: pass your VAE folder to `diffc encode --vae` and the recipe.
"""
import argparse
from pathlib import Path

import numpy as np


def make_tiny_vae(folder: Path, seed: int = 0) -> Path:
    """Save a tiny random AutoencoderKL in diffusers format (config.json + safetensors) to `folder`."""
    import torch
    from diffusers import AutoencoderKL
    torch.manual_seed(seed)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 8, 8), layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, sample_size=16)
    vae.save_pretrained(folder, safe_serialization=True)
    return folder


def make_image_folder(root: Path, per_class: int = 4, size: int = 16) -> Path:
    """root/<class>/<i>.png: two classes of coloured digits (scikit-learn's), the first of each larger and
    non-square so the center crop has work to do."""
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    for k, name in enumerate(("digit0", "digit1")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, index in enumerate(np.flatnonzero(digits.target == k)[:per_class]):
            grey = (digits.images[index] * 15.9).astype(np.uint8)
            rgb = np.stack([grey, 255 - grey, np.full_like(grey, 40 * (i + 1))], -1)
            shape = (size + 8, size + 4) if i == 0 else (size, size)      # width, height
            Image.fromarray(rgb).resize(shape, Image.NEAREST).save(root / name / f"{i}.png")
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="folder for vae/ and images/")
    parser.add_argument("--per-class", type=int, default=32, help="images per class")
    args = parser.parse_args()
    make_tiny_vae(args.out / "vae")
    make_image_folder(args.out / "images", args.per_class)
    print(f"wrote {args.out / 'vae'} and {args.out / 'images'}")
