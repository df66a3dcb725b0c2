"""`diffc encode IMAGES --vae DIR -o latents.npz` and `diffc decode LATENTS --vae DIR -o FOLDER`."""
from __future__ import annotations

from pathlib import Path

import click

from diffc.commands.common import device_option, resolve_device
from diffc.errors import UserError

vae_option = click.option("--vae", required=True,
                          help="diffusers AutoencoderKL folder (config.json + safetensors), or a Hub id online")


@click.command("encode", epilog="""\b
Examples:
  diffc encode data/imagenet/train --vae vae/sd-vae-ft-ema -o latents.npz --resolution 256 --flip
  diffc encode data/imagenet/train --vae vae/sd-vae-ft-mse --convention edm2 --resolution 512 -o edm2.npz
IMAGES holds IMAGES/<class>/<image> (labels from sorted class names) or plain images (no labels).
An interrupted run continues where it stopped when rerun with the same settings (progress: OUT.parts/).""")
@click.argument("images", type=click.Path(file_okay=False))
@vae_option
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="latent file to write (.npz)")
@click.option("--convention", type=click.Choice(["sd", "edm2"]), default="sd", show_default=True,
              help="sd: latents x scaling_factor (DiT/SiT); edm2: per-channel scale/bias (EDM2)")
@click.option("--resolution", type=click.IntRange(min=1), default=256, show_default=True,
              help="center crop (DiT/ADM) to this many pixels square")
@click.option("--flip", is_flag=True, help="also store each image's horizontally flipped crop (data.hflip picks it)")
@click.option("--posterior", type=click.Choice(["dist", "mean", "sample"]), default="dist", show_default=True,
              help="dist: mean and std, a fresh draw every step (DiT/EDM2 training); mean; sample: one fixed draw")
@click.option("--raw-stats", type=click.Choice(["published", "measured"]), default="published", show_default=True,
              help="edm2: EDM2's raw_mean/raw_std of sd-vae-ft-mse, or measured from these latents")
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True, help="images per VAE call")
@click.option("--shard", type=click.IntRange(min=1), default=1024, show_default=True,
              help="images per resumable shard")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of --posterior sample draws")
@device_option
@click.option("--overwrite", is_flag=True, help="replace an existing output file")
@click.option("--no-progress", is_flag=True, help="no progress bar")
def encode(images, vae, out, convention, resolution, flip, posterior, raw_stats, batch, shard, seed, device,
           overwrite, no_progress):
    """Encode the images under IMAGES into latents for training (one file, with its convention and VAE)."""
    from diffc.autoencoder import Autoencoder
    from diffc.encoding import EncodeOptions, encode_folder, list_images
    device = resolve_device(device)
    list_images(Path(images))                       # a wrong folder is reported before the (slow) VAE load
    if Path(out).exists() and not overwrite:
        raise UserError(f"{out} already exists", help="choose another -o, or pass --overwrite to replace it")
    autoencoder = Autoencoder.load(vae, device)
    options = EncodeOptions(convention, resolution, flip, posterior, raw_stats, shard, seed)
    meta = encode_folder(images, out, autoencoder, options, batch, overwrite, progress=not no_progress)
    shape = "x".join(map(str, meta["latent_shape"]))
    click.echo(f"wrote {meta['count']} latents ({shape}, {convention} convention, posterior {posterior}"
               f"{', with flipped copies' if flip else ''}) to {out}")


@click.command("decode", epilog="""\b
Examples:
  diffc decode latents.npz --vae vae/sd-vae-ft-mse -o recon/ --n 64      # check the autoencoder's reconstructions""")
@click.argument("latents", type=click.Path(dir_okay=False))
@vae_option
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="folder for the PNGs")
@click.option("--n", "count", type=click.IntRange(min=1), default=None, help="decode only the first N")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True)
@device_option
def decode(latents, vae, out, count, batch, device):
    """Decode a latent file written by `diffc encode` into PNG images (posterior means or the stored sample)."""
    import torch
    from diffc.autoencoder import Autoencoder
    from diffc.latent_file import read_latent_file
    from diffc.sampling.generate import to_uint8
    from diffc.sampling.images import pil_image
    device = resolve_device(device)
    if not Path(latents).is_file():
        raise UserError(f"latent file not found: {latents}")
    data = read_latent_file(latents)
    if data.meta is None:
        raise UserError("this file has no diffc metadata, so its convention is unknown", file=latents,
                        help="decode files written by `diffc encode`")
    autoencoder = Autoencoder.load(vae, device)
    warning = autoencoder.check_same_as(data.meta.get("vae", {}), "these latents")
    if warning:
        click.echo(warning, err=True)
    stored = data.latents[:count]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(stored), batch):
        chunk = torch.from_numpy(stored[start:start + batch][:, :data.channels].copy())
        pixels = autoencoder.decode_raw(chunk, data.convention.name)
        for offset, image in enumerate(to_uint8(pixels).permute(0, 2, 3, 1).cpu().numpy()):
            pil_image(image).save(out / f"{start + offset:06d}.png")
    click.echo(f"decoded {len(stored)} latents to {out}")
