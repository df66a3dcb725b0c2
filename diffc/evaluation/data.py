"""Reference images for the metrics: the built-in digits, an image folder, or an `.npz`, as uint8 3xHxW.

The built-in data is scikit-learn's digits (1797 8x8 grey images, values 0..16, 10 classes) scaled to [0, 1]
and upsampled BILINEARLY (align_corners=False) to `resolution`; the trainer maps the same images to [-1, 1].
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffc.datacheck import check_items, image_problem
from diffc.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# The built-in digits split in a fixed order: the last 297 are held out (never trained on by a recipe's default
# `data.split: train`, nor by the digits CNN), so `diffc eval --ref builtin` scores against images the model never saw.
DIGITS_COUNT, DIGITS_HELD_OUT = 1797, 297
DIGITS_SPLITS = {"train": slice(0, DIGITS_COUNT - DIGITS_HELD_OUT), "held-out": slice(DIGITS_COUNT - DIGITS_HELD_OUT, None),
                 "all": slice(None)}
BUILTIN_REFERENCES = {"builtin": "held-out", "builtin-train": "train", "builtin-all": "all"}


def digits_float(resolution: int = 16):
    """Digits as float [1797, 1, R, R] in [0, 1] (bilinear upsampling) and their labels [1797]."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0
    if resolution != 8:
        images = torch.nn.functional.interpolate(images, size=(resolution, resolution), mode="bilinear",
                                                 align_corners=False, antialias=resolution < 8)
    return images.clamp(0, 1), torch.from_numpy(digits.target).long()


def digits_uint8(resolution: int = 16) -> torch.Tensor:
    """The built-in reference: uint8 [1797, 3, R, R] (grey repeated over RGB)."""
    images, _ = digits_float(resolution)
    return (images * 255).round().to(torch.uint8).repeat(1, 3, 1, 1)


class ImageTensorDataset(torch.utils.data.Dataset):
    """uint8 [N, 3, H, W] tensor as the Dataset torch-fidelity takes (one 3xHxW image per item)."""

    def __init__(self, images: torch.Tensor):
        self.images = as_rgb_uint8(images)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def as_rgb_uint8(images: torch.Tensor) -> torch.Tensor:
    """[N, 1 or 3, H, W] uint8 -> [N, 3, H, W] uint8."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise UserError(f"expected uint8 images [N, 1 or 3, H, W], got {images.dtype} {tuple(images.shape)}")
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


def load_npz_images(path) -> torch.Tensor:
    """Images from an `.npz` (ADM layout `arr_0` or key `images`; NHWC or NCHW uint8) as [N, 3, H, W]."""
    try:
        with np.load(path) as data:
            key = "arr_0" if "arr_0" in data else "images" if "images" in data else None
            if key is None:
                raise UserError(f"{path}: no 'arr_0' or 'images' array in this .npz (found: {', '.join(data.files)})")
            array = data[key]
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read as .npz ({exc})") from None
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.dtype != np.uint8:
        raise UserError(f"{path}: expected uint8 images [N, H, W, C] or [N, C, H, W], got {array.dtype} {array.shape}")
    images = torch.from_numpy(array)
    if images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.permute(0, 3, 1, 2)
    return as_rgb_uint8(images.contiguous())


def reference_input(reference: str, resolution: int):
    """(torch-fidelity input, description) for the built-in digits ('builtin': the held-out split; 'builtin-train',
    'builtin-all'), an image folder or an `.npz` file."""
    if reference in BUILTIN_REFERENCES:
        split = BUILTIN_REFERENCES[reference]
        images = digits_uint8(resolution)[DIGITS_SPLITS[split]]
        return ImageTensorDataset(images), {"kind": "builtin-digits", "split": split, "count": len(images),
                                            "resolution": resolution, "upsampling": "bilinear"}
    path = Path(reference)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"{path}: no .png/.jpg images in this folder")
        check_items([(f, problem) for f in files if (problem := image_problem(f))], f"reference folder {path}")
        return str(path), {"kind": "folder", "path": str(path.resolve()), "count": len(files)}
    if path.is_file() and path.suffix == ".npz":
        images = load_npz_images(path)
        return ImageTensorDataset(images), {"kind": "npz", "path": str(path.resolve()), "count": len(images)}
    raise UserError(f"reference '{reference}' is not {', '.join(BUILTIN_REFERENCES)}, an image folder or an existing "
                    ".npz file", help="pass --ref builtin, --ref DIR (PNG/JPG files) or --ref FILE.npz")
