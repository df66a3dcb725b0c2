"""Training data: the built-in digits, image folders with class sub-folders, .npz/.npy arrays, precomputed latents.

Every data set yields float samples in model space ([-1, 1] for pixels), integer labels (or none), and optional
text-embedding sequences. Sample order is a pure function of (seed, position), so a run resumes at its image count.
Augmentations (random crop, horizontal flip) record their control metadata per sample: CONTROL_FIELDS.
"""
from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from diffc.datacheck import check_items, image_problem
from diffc.errors import UserError
from diffc.training.latents import LatentData, has_latent_metadata

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@attrs.define
class Batch:
    images: torch.Tensor                  # [N, C, H, W]
    labels: torch.Tensor | None           # [N] long
    control: torch.Tensor                 # [N, len(CONTROL_FIELDS)] float
    text: torch.Tensor | None = None      # [N, L, D]
    text_len: torch.Tensor | None = None  # [N]


class TensorData:
    """An in-memory data set: images [N, C, h, w] in model space (any h, w: resized on the fly)."""

    def __init__(self, images, labels=None, text=None, text_len=None, source="<data>"):
        self.images, self.labels, self.text, self.text_len, self.source = images, labels, text, text_len, source

    def __len__(self):
        return self.images.shape[0]

    def load(self, index: torch.Tensor):
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return self.images[index], pick(self.labels), pick(self.text), pick(self.text_len)


class FolderData:
    """root/<class>/<image>: one class per sub-folder (sorted names -> 0..K-1); decoded lazily with PIL."""

    def __init__(self, root: Path, channels: int):
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        if not classes:
            raise UserError(f"image folder {root} has no class sub-folders", help="expected root/<class>/<image>.png")
        self.root, self.classes = root, classes
        self.files = [(f, k) for k, name in enumerate(classes)
                      for f in sorted((root / name).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        if not self.files:
            raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
        self.mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
        self.labels = torch.tensor([k for _, k in self.files])
        self.text = self.text_len = None
        self.source = str(root)

    def __len__(self):
        return len(self.files)

    def _decode(self, path: Path, size: tuple[int, int]) -> torch.Tensor:
        from PIL import Image
        try:
            with Image.open(path) as img:
                img = img.convert(self.mode)
                scale = max(size[0] / img.height, size[1] / img.width)
                img = img.resize((max(size[1], round(img.width * scale)), max(size[0], round(img.height * scale))),
                                 Image.BICUBIC)
                top, left = (img.height - size[0]) // 2, (img.width - size[1]) // 2
                array = np.asarray(img.crop((left, top, left + size[1], top + size[0])), dtype=np.float32)
        except Exception as exc:
            raise UserError(f"cannot read image: {exc}", file=str(path)) from None
        array = array[:, :, None] if array.ndim == 2 else array
        return torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1

    def load(self, index: torch.Tensor, size=(16, 16)):
        images = torch.stack([self._decode(self.files[i][0], size) for i in index.tolist()])
        return images, self.labels[index], None, None

    def bad_items(self) -> list[tuple[str, str]]:
        """Empty class folders, stray images beside them, entries that are folders or not readable images."""
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        bad = [(self.root / name, "class folder holds no images") for name, n in zip(self.classes, counts) if not n]
        bad += [(p, "image outside a class folder (expected root/<class>/<image>)") for p in sorted(self.root.iterdir())
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        return bad + [(path, problem) for path, _ in self.files if (problem := image_problem(path))]


def _digits(channels: int, split: str) -> TensorData:
    """The built-in digits, the `split` of diffc.evaluation.data.DIGITS_SPLITS (train: all but eval's held-out)."""
    from sklearn.datasets import load_digits

    from diffc.evaluation.data import DIGITS_SPLITS
    if channels != 1:
        raise UserError(f"the built-in digits are 1-channel but the model takes {channels} channels",
                        help="use data: {name: folder, path: ...} or a 1-channel model")
    digits = load_digits()
    part = DIGITS_SPLITS[split]
    images = torch.tensor(digits.images, dtype=torch.float32)[part, None] / 8 - 1     # 0..16 -> [-1, 1]
    return TensorData(images, torch.tensor(digits.target, dtype=torch.long)[part], source=f"sklearn digits ({split})")


def _arrays(path: Path, channels: int, latents: bool, scale: float) -> TensorData:
    try:
        loaded = np.load(path, allow_pickle=False)
        arrays = {"images": loaded} if isinstance(loaded, np.ndarray) else {k: loaded[k] for k in loaded.files}
    except Exception as exc:
        raise UserError(f"cannot read array file: {exc}", file=str(path)) from None
    key = next((k for k in ("images", "latents", "x", "arr_0") if k in arrays), None)
    if key is None:
        raise UserError(f"no 'images' (or 'latents', 'x', 'arr_0') array; found {sorted(arrays)}", file=str(path))
    data = arrays[key]
    if data.ndim != 4:
        raise UserError(f"'{key}' must be 4-D [N, C, H, W] or [N, H, W, C], got shape {data.shape}", file=str(path))
    if data.shape[1] != channels and data.shape[-1] == channels:
        data = data.transpose(0, 3, 1, 2)
    if data.shape[1] != channels:
        raise UserError(f"'{key}' has shape {data.shape}; the model takes {channels} channels", file=str(path))
    images = torch.from_numpy(np.ascontiguousarray(data)).float()
    images = images * scale if latents else (images / 127.5 - 1 if data.dtype == np.uint8 else images)
    if data.shape[0] == 0:
        raise UserError(f"'{key}' holds no samples (shape {data.shape})", file=str(path))
    labels = next((arrays[k] for k in ("labels", "y") if k in arrays), None)
    if labels is not None and labels.shape != (data.shape[0],):
        raise UserError(f"labels must have shape ({data.shape[0]},), got {labels.shape}", file=str(path))
    if labels is not None and (labels.dtype.kind not in "iuf" or (labels.dtype.kind == "f" and not (
            np.isfinite(labels).all() and (labels == np.round(labels)).all()))):
        raise UserError(f"labels must be whole numbers, got {labels.dtype} values", file=str(path))
    for name in ("text", "text_len"):
        if name in arrays and arrays[name].shape[:1] != (data.shape[0],):
            raise UserError(f"'{name}' must hold one row per sample ({data.shape[0]}), got shape {arrays[name].shape}",
                            file=str(path))
    text = torch.from_numpy(arrays["text"]).float() if "text" in arrays else None
    text_len = torch.from_numpy(arrays["text_len"]).long() if "text_len" in arrays else None
    return TensorData(images, None if labels is None else torch.from_numpy(labels).long(), text, text_len, str(path))


def scan_dataset(dataset, interface) -> None:
    """Every bad item of the data set, reported at once before training: unreadable files, samples holding NaN
    or inf, labels outside the model's classes."""
    bad = dataset.bad_items() if isinstance(dataset, FolderData) else _bad_samples(dataset)
    for cond in (c for c in interface.conditions if c.kind == "label"):
        if dataset.labels is not None:
            wrong = ((dataset.labels < 0) | (dataset.labels >= cond.classes)).nonzero().flatten().tolist()
            bad += [(_item(dataset, "labels", i), f"label {int(dataset.labels[i])} is outside '{cond.name}': "
                     f"0..{cond.classes - 1}") for i in wrong]
    check_items(bad, f"data set {dataset.source}")


def _item(dataset, name: str, index: int) -> str:
    if isinstance(dataset, FolderData):
        return str(dataset.files[index][0])
    return f"{dataset.source}: {name}[{index}]"


def _bad_samples(dataset: TensorData, chunk: int = 4096) -> list[tuple[str, str]]:
    """Samples (images, text embeddings) holding NaN or inf, in chunks so memory stays bounded."""
    bad = []
    for name, array in (("images", dataset.images), ("text", dataset.text)):
        if array is None:
            continue
        for start in range(0, array.shape[0], chunk):
            finite = torch.isfinite(array[start:start + chunk].flatten(1)).all(1)
            bad += [(_item(dataset, name, start + i), "holds NaN or inf") for i in (~finite).nonzero().flatten().tolist()]
    return bad


def build_dataset(cfg, interface, base_dir: Path):
    """The data set named by the recipe's `data` section; relative paths are relative to the recipe file."""
    channels, height, width = interface.sample_shape
    if cfg.name != "latents" and (cfg.resolution, cfg.resolution) != (height, width):
        raise UserError(f"data.resolution is {cfg.resolution} but the model's samples are {height}x{width}",
                        help=f"set data: {{resolution: {height}}}")
    if cfg.name == "digits":
        return _digits(channels, cfg.split)
    if cfg.path is None:
        raise UserError(f"data '{cfg.name}' needs a path", help="data: {name: %s, path: ...}" % cfg.name)
    path = (base_dir / cfg.path) if not Path(cfg.path).is_absolute() else Path(cfg.path)
    if not path.exists():
        raise UserError(f"data path not found: {path}")
    if cfg.name == "folder":
        return FolderData(path, channels)
    if cfg.name == "latents" and has_latent_metadata(path):
        return LatentData(path, cfg, interface.sample_shape)
    return _arrays(path, channels, cfg.name == "latents", cfg.latent_scale)


def sample_indices(seed: int, position: int, count: int, size: int) -> torch.Tensor:
    """Data indices of stream positions [position, position + count): a fresh permutation per epoch."""
    positions = torch.arange(position, position + count)
    out = torch.empty(count, dtype=torch.long)
    for epoch in positions.div(size, rounding_mode="floor").unique().tolist():
        perm = torch.randperm(size, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        sel = positions.div(size, rounding_mode="floor") == epoch
        out[sel] = perm[positions[sel] % size]
    return out


def load_batch(dataset, cfg, index: torch.Tensor, size: tuple[int, int], generator: torch.Generator) -> Batch:
    """Load samples, apply the random crop / flip of `cfg` and record each sample's control metadata.
    (Loading draws nothing before the augmentations do, so they come first; a latent file picks its stored
    flipped copies and draws its posterior samples after them.)"""
    n = len(index)
    scale = cfg.crop_scale + (1 - cfg.crop_scale) * torch.rand(n, generator=generator)
    side = scale.sqrt()
    top, left = (1 - side) * torch.rand(n, generator=generator), (1 - side) * torch.rand(n, generator=generator)
    flip = (torch.rand(n, generator=generator) < cfg.hflip).float()
    if isinstance(dataset, FolderData):
        images, labels, text, text_len = dataset.load(index, size)
    elif isinstance(dataset, LatentData):
        images, labels, text, text_len = dataset.load(index, flip.bool(), generator)
    else:
        images, labels, text, text_len = dataset.load(index)
    _, _, h, w = images.shape
    if cfg.name != "latents" and (cfg.crop_scale < 1 or (h, w) != size):
        images = torch.stack([_crop_resize(images[i], top[i], left[i], side[i], size) for i in range(n)])
    if not isinstance(dataset, LatentData):
        images = torch.where(flip.view(-1, 1, 1, 1).bool(), images.flip(-1), images)
    control = torch.stack([torch.full((n,), h / size[0]), torch.full((n,), w / size[1]), top, left, side, side, flip], 1)
    return Batch(images.contiguous(), labels, control, text, text_len)


def _crop_resize(image, top, left, side, size):
    """Crop the box (top, left, side) in fractions of the image, then resize to `size` (bilinear)."""
    _, h, w = image.shape
    y0, x0 = int(round(float(top) * h)), int(round(float(left) * w))
    ch, cw = max(1, int(round(float(side) * h))), max(1, int(round(float(side) * w)))
    crop = image[:, y0:y0 + ch, x0:x0 + cw]
    return F.interpolate(crop[None], size=size, mode="bilinear", align_corners=False)[0]
