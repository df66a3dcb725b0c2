"""Latent diffusion through a diffusers `AutoencoderKL`: the SD and EDM2 latent conventions, loading, encode/decode.

A convention maps the VAE's raw latents to the model's ("final") latents per channel: final = raw * scale + bias.
* sd:   scale = the VAE's `scaling_factor` (0.18215 for the SD VAEs), bias = -shift_factor * scale (0 for SD);
        the VAE sees pixels in [-1, 1] (DiT's train.py / sample.py).
* edm2: scale = final_std / raw_std, bias = final_mean - raw_mean * scale (EDM2 training/encoders.py,
        StabilityVAEEncoder); its encoders.py feeds the VAE pixels in [0, 1] (uint8 / 255) and reads [0, 1] back.
diffc's pixel space is [-1, 1] everywhere else; `Autoencoder.encode` / `decode` convert at the VAE's boundary.
diffusers is imported here only, lazily, so the language commands stay torch-free.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
import warnings
from pathlib import Path

import attrs
import numpy as np

from diffc.errors import UserError

SD_SCALE = 0.18215
EDM2_RAW_MEAN = (5.81, 3.25, 0.12, -2.15)   # EDM2's assumed statistics of sd-vae-ft-mse raw latents
EDM2_RAW_STD = (4.17, 4.62, 3.71, 3.28)
EDM2_FINAL_MEAN, EDM2_FINAL_STD = 0.0, 0.5
CONVENTIONS = ("sd", "edm2")
PIXEL_RANGES = {"sd": "-1..1", "edm2": "0..1"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"


@attrs.frozen
class Convention:
    """How raw VAE latents become the model's latents: final = raw * scale + bias, per channel."""
    name: str
    scale: tuple[float, ...]
    bias: tuple[float, ...]
    raw_mean: tuple[float, ...] | None = None     # edm2: the statistics scale/bias came from
    raw_std: tuple[float, ...] | None = None

    @property
    def pixel_range(self) -> str:
        return PIXEL_RANGES[self.name]

    def to_final(self, raw):
        scale, bias = self._per_channel(raw)
        return raw * scale + bias

    def to_raw(self, final):
        scale, bias = self._per_channel(final)
        return (final - bias) / scale

    def _per_channel(self, x):
        import torch
        if x.shape[1] != len(self.scale):
            raise UserError(f"latents have {x.shape[1]} channels but the {self.name} convention has {len(self.scale)}")
        shape = (1, -1) + (1,) * (x.dim() - 2)
        as_tensor = lambda v: torch.tensor(v, dtype=x.dtype, device=x.device).view(shape)  # noqa: E731
        return as_tensor(self.scale), as_tensor(self.bias)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(self).items()}

    @classmethod
    def from_dict(cls, data, where: str) -> "Convention":
        """From stored metadata (a latent file, a checkpoint); anything malformed is a UserError naming `where`."""
        try:
            name = data["name"]
            scale, bias = tuple(map(float, data["scale"])), tuple(map(float, data["bias"]))
            raw = {k: tuple(map(float, data[k])) if data.get(k) is not None else None for k in ("raw_mean", "raw_std")}
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"malformed latent convention metadata ({type(exc).__name__}: {exc})", file=where) from None
        if name not in CONVENTIONS or len(scale) != len(bias) or not scale or not all(np.isfinite(scale + bias)) \
                or 0.0 in scale:
            raise UserError(f"invalid latent convention metadata: {data!r:.200}", file=where,
                            help="re-encode the images with `diffc encode`")
        return cls(name, scale, bias, **raw)


def sd_convention(channels: int, scaling_factor: float = SD_SCALE, shift_factor: float | None = None) -> Convention:
    """DiT / Stable Diffusion: z * scaling_factor (SD3/Flux-style VAEs: (z - shift) * scaling_factor)."""
    scale = np.float32(scaling_factor)
    bias = -np.float32(shift_factor or 0.0) * scale
    return Convention("sd", (float(scale),) * channels, (float(bias) + 0.0,) * channels)


def edm2_convention(raw_mean=EDM2_RAW_MEAN, raw_std=EDM2_RAW_STD, final_mean: float = EDM2_FINAL_MEAN,
                    final_std: float = EDM2_FINAL_STD) -> Convention:
    """EDM2 StabilityVAEEncoder: scale = final_std / raw_std, bias = final_mean - raw_mean * scale (float32)."""
    if len(raw_mean) != len(raw_std) or min(raw_std) <= 0:
        raise UserError(f"EDM2 statistics need one positive std per mean, got mean {raw_mean} std {raw_std}")
    scale = np.float32(final_std) / np.asarray(raw_std, dtype=np.float32)
    bias = np.float32(final_mean) - np.asarray(raw_mean, dtype=np.float32) * scale
    return Convention("edm2", tuple(scale.tolist()), tuple(bias.tolist()), tuple(map(float, raw_mean)),
                      tuple(map(float, raw_std)))


def locate_vae(path: str, base_dir: Path) -> str:
    """A recipe's autoencoder path: relative to the recipe's folder, unless it only makes sense as a Hub id."""
    candidate = Path(path) if Path(path).is_absolute() else base_dir / path
    return str(candidate) if candidate.exists() or not _HUB_ID.match(path) else path


def resolve_vae_source(source: str | Path) -> tuple[str, str | None]:
    """(folder or Hub id, subfolder) of a diffusers AutoencoderKL; checks a local folder without importing diffusers."""
    path = Path(source)
    if path.is_dir():
        folder = path if (path / "config.json").is_file() else path / "vae"
        if not (folder / "config.json").is_file():
            raise UserError(f"{path} is not a diffusers AutoencoderKL folder (no config.json, nor vae/config.json)",
                            help="save one with AutoencoderKL.save_pretrained(DIR) or pass a pipeline folder")
        _check_vae_folder(folder)
        return str(path), None if folder == path else "vae"
    if path.exists():
        raise UserError(f"{path} is a file; --vae takes a diffusers AutoencoderKL folder (config.json + "
                        f"{WEIGHTS_FILE})")
    if not _HUB_ID.match(str(source)):
        raise UserError(f"autoencoder folder not found: {source}",
                        help="pass a local diffusers-format folder (config.json + safetensors) or a Hub id")
    return str(source), None


def _check_vae_folder(folder: Path) -> None:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the autoencoder config: {exc}", file=str(folder / "config.json")) from None
    kind = config.get("_class_name") if isinstance(config, dict) else None
    if kind != "AutoencoderKL":
        raise UserError(f"the folder holds a {kind or 'model of unknown class'}, not an AutoencoderKL",
                        file=str(folder / "config.json"))
    if not any(folder.glob("*.safetensors")):
        bins = sorted(p.name for p in folder.glob("*.bin"))
        raise UserError(f"no .safetensors weights in {folder}" + (f" (found {', '.join(bins)})" if bins else ""),
                        help="diffc reads safetensors only (a pickled .bin can run code when loaded); convert it: "
                             "AutoencoderKL.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)")


class Autoencoder:
    """A loaded AutoencoderKL in eval mode with its identity (source, sha256 of the weights, shape facts)."""

    def __init__(self, vae, source: str):
        self.vae = vae.eval().requires_grad_(False)
        config = vae.config
        self.latent_channels = int(config.latent_channels)
        self.downsample = 2 ** (len(config.block_out_channels) - 1)
        self.in_channels = int(config.in_channels)
        self.identity = {"source": source, "sha256": state_sha256(vae.state_dict()),
                         "latent_channels": self.latent_channels, "downsample": self.downsample,
                         "scaling_factor": float(config.scaling_factor),
                         "shift_factor": None if config.get("shift_factor") is None else float(config.shift_factor)}

    @classmethod
    def load(cls, source: str | Path, device="cpu") -> "Autoencoder":
        """From a local diffusers folder (or a pipeline folder with vae/), or a Hub id where a network exists."""
        name, subfolder = resolve_vae_source(source)
        from diffusers import AutoencoderKL
        from diffusers.utils import logging as diffusers_logging
        diffusers_logging.set_verbosity_error()
        local = Path(name).is_dir()
        try:
            with warnings.catch_warnings():     # diffusers passes huggingface_hub a deprecated argument
                warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
                vae = AutoencoderKL.from_pretrained(name, subfolder=subfolder, use_safetensors=True,
                                                    low_cpu_mem_usage=False, local_files_only=local)
        except Exception as exc:  # diffusers raises OSError/ValueError/EnvironmentError/HTTP errors
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            if local:
                raise UserError(f"cannot load the autoencoder: {first}", file=name) from None
            raise UserError(f"cannot load autoencoder '{name}' from the Hugging Face Hub: {first}",
                            help=f"without a network, download it where one exists (huggingface-cli download {name} "
                                 f"--local-dir DIR) and pass the folder DIR instead") from None
        return cls(vae.to(device), str(Path(name).resolve()) if local else name)

    @property
    def device(self):
        return next(self.vae.parameters()).device

    def default_convention(self, name: str) -> Convention:
        """The convention `name` with this VAE's constants (edm2: EDM2's published statistics, 4 channels only)."""
        if name == "sd":
            return sd_convention(self.latent_channels, self.identity["scaling_factor"], self.identity["shift_factor"])
        if self.latent_channels != len(EDM2_RAW_MEAN):
            raise UserError(f"EDM2's published latent statistics are for 4 channels; this VAE has "
                            f"{self.latent_channels}", help="measure them from your data: --raw-stats measured")
        return edm2_convention()

    def encode(self, pixels, convention: str):
        """Posterior (mean, std) of pixels in [-1, 1], fed to the VAE in the convention's pixel range."""
        import torch
        x = pixels.to(self.device, torch.float32)
        x = (x + 1) / 2 if PIXEL_RANGES[convention] == "0..1" else x
        with torch.no_grad():
            posterior = self.vae.encode(x).latent_dist
        return posterior.mean, posterior.std

    def decode(self, final, convention: Convention):
        """Model latents -> pixels in [-1, 1] (clamped), whatever range the convention's VAE works in."""
        import torch
        return self.decode_raw(convention.to_raw(final.to(self.device, torch.float32)), convention.name)

    def decode_raw(self, raw, convention: str):
        """Raw VAE latents -> pixels in [-1, 1] (clamped); the VAE works in the pixel range of `convention`."""
        import torch
        with torch.no_grad():
            pixels = self.vae.decode(raw.to(self.device, torch.float32)).sample
        pixels = pixels * 2 - 1 if PIXEL_RANGES[convention] == "0..1" else pixels
        return pixels.clamp(-1, 1)

    def check_same_as(self, identity: dict, what: str) -> str | None:
        """A warning text when this VAE's weights differ from those `identity` records, else None."""
        if identity.get("sha256") in (None, self.identity["sha256"]):
            return None
        return (f"warning: {what} used the autoencoder {identity.get('source')} (sha256 {identity['sha256'][:12]}), "
                f"this one is {self.identity['source']} (sha256 {self.identity['sha256'][:12]})")


def state_sha256(state: dict) -> str:
    """sha256 over the state_dict's names, dtypes, shapes and bytes: the VAE's identity, however it was stored."""
    import torch
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class LatentDecoder:
    """What turns a latent model's samples into pixels: an autoencoder and the convention the model was trained in.

    `info` is plain data (the VAE's source and identity, the convention) stored in checkpoints, so that sampling
    and evaluation decode with what training used; `from_info` reloads it, or another VAE given by the user."""

    def __init__(self, autoencoder: Autoencoder, convention: Convention):
        if len(convention.scale) != autoencoder.latent_channels:
            raise UserError(f"the autoencoder has {autoencoder.latent_channels} latent channels, the latents "
                            f"{len(convention.scale)}")
        self.autoencoder, self.convention = autoencoder, convention

    @property
    def info(self) -> dict:
        return {"source": self.autoencoder.identity["source"], "vae": self.autoencoder.identity,
                "convention": self.convention.to_dict()}

    def decode(self, final):
        """Model latents [N, C, h, w] -> pixels [N, 3, H, W] in [-1, 1]."""
        return self.autoencoder.decode(final, self.convention)

    @classmethod
    def from_info(cls, info: dict, where: str, vae: str | None = None, device="cpu") -> "LatentDecoder":
        """The decoder a checkpoint records; `vae` replaces its autoencoder (e.g. sd-vae-ft-mse for sampling)."""
        if not isinstance(info, dict) or not isinstance(info.get("source"), str):
            raise UserError("malformed autoencoder record", file=where)
        convention = Convention.from_dict(info.get("convention"), where)
        source = vae or info["source"]
        if vae is None and not Path(source).is_dir() and not _HUB_ID.match(source):
            raise UserError(f"the autoencoder this model was trained with is not at {source} any more", file=where,
                            help="pass its folder with --vae DIR")
        autoencoder = Autoencoder.load(source, device)
        if vae is None:
            warning = autoencoder.check_same_as(info.get("vae") or {}, "training")
            if warning:
                print(warning, file=sys.stderr)
        return cls(autoencoder, convention)
