"""`diffc encode`: an image folder -> a latent file, resumable shard by shard.

Images are center-cropped as DiT / ADM do (halve with a box filter while the short side is at least twice the
resolution, bicubic resize of the short side to the resolution, center crop), mapped to [-1, 1] and encoded in
the convention's pixel range. Progress lives in `OUT.parts/`: a manifest of the settings plus one atomically
written shard per `shard` images; a rerun with the same settings continues after the last complete shard, and
the final file is streamed from the shards (bounded memory) before the parts folder is removed.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import attrs
import numpy as np

from diffc.autoencoder import Autoencoder, edm2_convention
from diffc.errors import UserError
from diffc.files import atomic_write
from diffc.latent_file import POSTERIORS, raw_statistics, write_latent_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
RAW_STATS = ("published", "measured")


@attrs.frozen
class EncodeOptions:
    convention: str = "sd"          # sd | edm2
    resolution: int = 256
    flip: bool = False              # also store the encoded horizontally flipped crop of every image
    posterior: str = "dist"         # dist (mean + std) | mean | sample (one fixed draw)
    raw_stats: str = "published"    # edm2: EDM2's published statistics, or measured from these latents
    shard: int = 1024               # images per resumable shard
    seed: int = 0                   # posterior "sample" draws


def list_images(root: Path) -> tuple[list[Path], list[int] | None, list[str]]:
    """Images of root/<class>/* (labels from sorted class names) or, without sub-folders, of root/* (no labels)."""
    if not root.is_dir():
        raise UserError(f"image folder not found: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes:
        files = [(f, k) for k, name in enumerate(classes) for f in sorted((root / name).iterdir())
                 if f.suffix.lower() in IMAGE_SUFFIXES]
    else:
        files = [(f, None) for f in sorted(root.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}",
                        help="expected root/<class>/<image> (labelled) or root/<image> (unlabelled)")
    return [f for f, _ in files], ([k for _, k in files] if classes else None), classes


def center_crop(image, size: int):
    """DiT / ADM center crop of a PIL image to size x size (box-filter halving, bicubic, center)."""
    from PIL import Image
    while min(image.size) >= 2 * size:
        image = image.resize((image.width // 2, image.height // 2), Image.BOX)
    ratio = size / min(image.size)
    image = image.resize((round(image.width * ratio), round(image.height * ratio)), Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return image.crop((left, top, left + size, top + size))


def load_pixels(path: Path, size: int, channels: int) -> np.ndarray:
    """uint8 [C, size, size] of one image; an unreadable image is a UserError naming it."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            array = np.asarray(center_crop(image.convert("L" if channels == 1 else "RGB"), size))
    except Exception as exc:  # PIL raises many kinds for damaged or non-image files
        raise UserError(f"cannot read image ({type(exc).__name__}: {exc})", file=str(path),
                        help="fix or remove the file and rerun: complete shards are kept") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _manifest(options: EncodeOptions, files: list[Path], root: Path, vae: Autoencoder) -> dict:
    listing = hashlib.sha256("\n".join(str(f.relative_to(root)) for f in files).encode()).hexdigest()
    return {"options": attrs.asdict(options), "images": len(files), "listing_sha256": listing,
            "vae_sha256": vae.identity["sha256"]}


def _open_parts(parts: Path, manifest: dict) -> None:
    """Create OUT.parts/ with its manifest, or check an existing one was made with the same settings."""
    path = parts / "manifest.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        if old != manifest:
            raise UserError(f"{parts} holds a partial encode with other settings, images or autoencoder",
                            help=f"rerun with the same settings to continue it, or delete {parts} to start afresh")
        return
    atomic_write(path, json.dumps(manifest, indent=1))


def _encode_shard(vae: Autoencoder, files, options: EncodeOptions, index: int, batch: int) -> dict:
    import torch
    chunks = {"latents": [], "latents_flipped": []}
    generator = torch.Generator().manual_seed(options.seed * 1_000_003 + index)
    for start in range(0, len(files), batch):
        pixels = np.stack([load_pixels(f, options.resolution, vae.in_channels) for f in files[start:start + batch]])
        pixels = torch.from_numpy(pixels).float() / 127.5 - 1
        for key, view in (("latents", pixels), ("latents_flipped", pixels.flip(-1) if options.flip else None)):
            if view is None:
                continue
            mean, std = (t.float().cpu() for t in vae.encode(view, options.convention))
            if options.posterior == "dist":
                raw = torch.cat([mean, std], 1)
            elif options.posterior == "sample":
                raw = mean + std * torch.randn(mean.shape, generator=generator)
            else:
                raw = mean
            chunks[key].append(raw.numpy())
    return {k: np.concatenate(v) for k, v in chunks.items() if v}


def encode_folder(root, out, vae: Autoencoder, options: EncodeOptions, batch: int = 32, overwrite: bool = False,
                  progress: bool = True) -> dict:
    """Encode every image under `root` into the latent file `out`; returns its metadata."""
    from tqdm import tqdm
    root, out = Path(root), Path(out)
    _validate(options, vae, out, overwrite)
    files, labels, classes = list_images(root)
    parts = out.with_name(out.name + ".parts")
    manifest = _manifest(options, files, root, vae)
    _open_parts(parts, manifest)
    shards = [files[i:i + options.shard] for i in range(0, len(files), options.shard)]
    shard_path = lambda k: parts / f"shard-{k:06d}.npz"  # noqa: E731
    done = sum(len(s) for k, s in enumerate(shards) if shard_path(k).is_file())
    with tqdm(total=len(files), initial=done, unit="img", desc="encoding", disable=not progress) as bar:
        for k, shard in enumerate(shards):
            if shard_path(k).is_file():
                continue
            arrays = _encode_shard(vae, shard, options, k, batch)
            atomic_write(shard_path(k), lambda handle, a=arrays: np.savez(handle, **a))
            bar.update(len(shard))
    meta = _finish(out, parts, [shard_path(k) for k in range(len(shards))], files, labels, classes, root, vae, options)
    shutil.rmtree(parts)
    return meta


def _validate(options: EncodeOptions, vae: Autoencoder, out: Path, overwrite: bool) -> None:
    if options.posterior not in POSTERIORS:
        raise UserError(f"unknown posterior '{options.posterior}'", help="use one of: " + ", ".join(POSTERIORS))
    if options.raw_stats not in RAW_STATS:
        raise UserError(f"unknown --raw-stats '{options.raw_stats}'", help="use one of: " + ", ".join(RAW_STATS))
    if options.convention == "sd" and options.raw_stats != "published":
        raise UserError("--raw-stats measured is for the edm2 convention (sd scales by the VAE's scaling_factor)")
    if options.convention == "edm2" and options.raw_stats == "published":
        vae.default_convention("edm2")        # EDM2's numbers exist for 4-channel VAEs only
    if options.resolution % vae.downsample:
        raise UserError(f"--resolution {options.resolution} is not a multiple of the autoencoder's "
                        f"downsampling {vae.downsample}")
    if out.suffix != ".npz":
        raise UserError(f"the output must be an .npz file, got {out}")
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists", help="choose another -o, or pass --overwrite to replace it")


def _shard_arrays(paths, key: str):
    for path in paths:
        with np.load(path, allow_pickle=False) as shard:
            yield shard[key]


def _finish(out, parts, shard_paths, files, labels, classes, root, vae, options) -> dict:
    """Convention (measuring EDM2 statistics if asked), then the final file streamed shard by shard."""
    with np.load(shard_paths[0], allow_pickle=False) as first:
        latent_shape = first["latents"].shape[1:]
    dist = options.posterior == "dist"
    if options.convention == "edm2" and options.raw_stats == "measured":
        mean, std = raw_statistics((chunk, dist) for chunk in _shard_arrays(shard_paths, "latents"))
        convention = edm2_convention(mean, std)
    else:
        convention = vae.default_convention(options.convention)
    shape = (len(files), *latent_shape)
    arrays = {"latents": (np.float32, shape, _shard_arrays(shard_paths, "latents"))}
    if options.flip:
        arrays["latents_flipped"] = (np.float32, shape, _shard_arrays(shard_paths, "latents_flipped"))
    if labels is not None:
        arrays["labels"] = np.asarray(labels, dtype=np.int64)
    arrays["files"] = np.array([str(f.relative_to(root)) for f in files])
    meta = {"count": len(files), "convention": convention.to_dict(), "posterior": options.posterior,
            "resolution": options.resolution, "flip": options.flip, "class_names": classes,
            "latent_shape": [latent_shape[0] // (2 if dist else 1), *latent_shape[1:]],
            "vae": vae.identity, "images": str(root.resolve()), "seed": options.seed}
    write_latent_file(out, arrays, meta)
    return meta
