"""Writing samples as pictures: one image per file, and near-square grids (used by sample and train)."""
from __future__ import annotations

import math

import numpy as np


def pil_image(array: np.ndarray):
    """HWC uint8 -> PIL image (one channel as grey)."""
    from PIL import Image
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array[..., :3])


def grid_image(images: np.ndarray, pad: int = 2, min_size: int = 0):
    """NHWC uint8 -> a near-square grid with `pad` black pixels between images; with `min_size`, upscaled
    (nearest) to at least that many pixels so small samples stay visible (training previews)."""
    n, h, w, c = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for i, image in enumerate(images):
        r, q = divmod(i, cols)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = image
    img = pil_image(canvas)
    scale = max(1, math.ceil(min_size / max(img.size)))
    return img.resize((img.width * scale, img.height * scale), 0) if scale > 1 else img
