"""Training on a `diffc encode` latent file, and the decoder its previews and checkpoints use.

Each step takes the stored (or stored flipped) latents, draws mean + randn * std when the file holds the posterior
(EDM2's encode_latents, and DiT's fresh `latent_dist.sample()` per step), then applies the file's convention:
final = raw * scale + bias. Draws come from the batch's generator, so a resumed run repeats them exactly.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from diffc.autoencoder import Autoencoder, LatentDecoder, locate_vae
from diffc.errors import UserError
from diffc.latent_file import META_KEY, LatentFile, read_latent_file


def has_latent_metadata(path: Path) -> bool:
    """Whether `path` is a `diffc encode` file (it carries its convention), not a plain array of latents."""
    if path.suffix != ".npz":
        return False
    try:
        with np.load(path, allow_pickle=False) as archive:
            return META_KEY in archive.files
    except Exception:  # unreadable: the plain-array loader reports it with its own message
        return False


class LatentData:
    """Latents of a `diffc encode` file, in the model's (final) space when loaded."""

    def __init__(self, path: Path, cfg, sample_shape):
        file: LatentFile = read_latent_file(path)
        channels, height, width = sample_shape
        shape = (file.channels, *file.latents.shape[2:])
        if shape != (channels, height, width):
            raise UserError(f"the latents are {'x'.join(map(str, shape))} but the model's samples are "
                            f"{channels}x{height}x{width}", file=str(path),
                            help=f"set the spec's model to channels = {shape[0]}, size = {shape[1]}")
        if cfg.latent_scale != 1.0:
            raise UserError(f"data.latent_scale is {cfg.latent_scale}, but this latent file carries its own "
                            f"{file.convention.name} scale and bias", file=str(path),
                            help="remove data.latent_scale from the recipe")
        if cfg.hflip > 0 and file.flipped is None:
            raise UserError(f"data.hflip is {cfg.hflip} but the file holds no flipped copies", file=str(path),
                            help="re-encode with `diffc encode ... --flip`, or set data: {hflip: 0}")
        self.file, self.convention, self.source = file, file.convention, str(path)
        self.images = torch.from_numpy(file.latents)        # stored raw latents (scanned for NaN/inf)
        self.flipped = None if file.flipped is None else torch.from_numpy(file.flipped)
        self.labels = None if file.labels is None else torch.from_numpy(file.labels).long()
        self.text = self.text_len = None

    def __len__(self):
        return len(self.images)

    def load(self, index: torch.Tensor, flip: torch.Tensor, generator: torch.Generator):
        raw = self.images[index].float()
        if self.flipped is not None:
            raw = torch.where(flip.view(-1, 1, 1, 1), self.flipped[index].float(), raw)
        if self.file.posterior == "dist":
            mean, std = raw.chunk(2, dim=1)
            raw = mean + std * torch.randn(mean.shape, generator=generator)
        labels = None if self.labels is None else self.labels[index]
        return self.convention.to_final(raw), labels, None, None


def open_decoder(cfg, dataset, base_dir: Path, recipe_name: str, device) -> LatentDecoder | None:
    """The recipe's autoencoder with the convention of the data (the file's, or sd for plain latent arrays)."""
    if cfg.path is None:
        return None
    autoencoder = Autoencoder.load(locate_vae(cfg.path, base_dir), device)
    if isinstance(dataset, LatentData):
        convention = dataset.convention
        if cfg.convention not in (None, convention.name):
            raise UserError(f"autoencoder.convention is {cfg.convention} but {dataset.source} was encoded with the "
                            f"{convention.name} convention", file=recipe_name,
                            help="remove autoencoder.convention (the file's is used) or re-encode")
        warning = autoencoder.check_same_as(dataset.file.meta.get("vae") or {}, f"encoding {dataset.source}")
        if warning:
            print(warning, file=sys.stderr)
    elif (cfg.convention or "sd") == "sd":
        convention = autoencoder.default_convention("sd")     # plain arrays: already multiplied by the scale
    else:
        raise UserError("the edm2 convention needs a latent file written by `diffc encode` (it stores scale/bias)",
                        file=recipe_name, help="diffc encode IMAGES --vae DIR --convention edm2 -o latents.npz")
    return LatentDecoder(autoencoder, convention)
