"""A tiny randomly initialised diffusers AutoencoderKL (4x downsampling, 4 latent channels, ~15k parameters) and a
small labelled image folder, both built by the tests themselves (nothing is downloaded)."""
from pathlib import Path

import numpy as np


def make_tiny_vae(folder: Path, seed: int = 0) -> Path:
    """Save a tiny AutoencoderKL in diffusers format (config.json + safetensors) to `folder`."""
    import torch
    from diffusers import AutoencoderKL
    torch.manual_seed(seed)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 8, 8), layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, sample_size=16)
    vae.save_pretrained(folder, safe_serialization=True)
    return folder


def make_image_folder(root: Path, per_class: int = 4, size: int = 16) -> Path:
    """root/<class>/<i>.png: two classes of coloured digit-like RGB images (one larger, non-square, per class)."""
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    for k, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True, exist_ok=True)
        picks = np.flatnonzero(digits.target == k)[:per_class]
        for i, index in enumerate(picks):
            grey = (digits.images[index] * 15.9).astype(np.uint8)
            rgb = np.stack([grey, 255 - grey, np.full_like(grey, 40 * (i + 1))], -1)
            shape = (size + 8, size + 4) if i == 0 else (size, size)      # width, height
            Image.fromarray(rgb).resize(shape, Image.NEAREST).save(root / name / f"{i}.png")
    return root
