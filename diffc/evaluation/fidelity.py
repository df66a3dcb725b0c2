"""Metrics through torch-fidelity: the diffusion model as a GenerativeModelBase, extractor resolution, provenance.

torch-fidelity pitfalls handled here (ecosystem.md): `cuda` always passed explicitly; the generator is exposed
as unconditional (its class-conditional path crashes on numpy >= 1.24), labels come from each sample's seed;
`kid_subset_size` <= the smaller sample count; never a network call for Inception weights.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch_fidelity.generative_model_base import GenerativeModelBase

from diffc.errors import UserError
from diffc.evaluation import extractor as digits
from diffc.evaluation.data import as_rgb_uint8

INCEPTION_NAME = "inception-v3-compat"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
EXTRACTORS = ("auto", "digits", "inception")


class SeededGenerator(GenerativeModelBase):
    """Adapts `sample_fn(seeds) -> uint8 [N, C, H, W]` to torch-fidelity; the k-th image drawn uses seed base + k.

    torch-fidelity's latent `z` only fixes how many images a call makes, so results do not depend on its batch size.
    """

    def __init__(self, sample_fn, seed: int = 0):
        super().__init__()
        self.sample_fn = sample_fn
        self.seed = seed
        self.drawn = 0

    @property
    def z_size(self):
        return 1

    @property
    def z_type(self):
        return "normal"

    @property
    def num_classes(self):
        return 0

    def forward(self, z):
        seeds = range(self.seed + self.drawn, self.seed + self.drawn + z.shape[0])
        self.drawn += z.shape[0]
        return as_rgb_uint8(self.sample_fn(seeds))


def inception_weights(weights=None) -> Path:
    """The Inception-v3 weights file: `weights` if given, else torch-fidelity's cache path; never downloads."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise UserError(f"Inception weights file not found: {path}", help="pass an existing file to --weights")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if not path.is_file():
        raise UserError(f"Inception-v3 weights are not on disk (looked for {path}); diffc never downloads them",
                        help=f"download {INCEPTION_URL} on a machine with network access and put it at {path}, "
                             f"or pass --weights FILE",
                        notes=["for the built-in digits data, --extractor digits needs no download"])
    return path


def resolve_extractor(extractor: str, reference: str, weights=None) -> dict:
    """Name registered in torch-fidelity, weights path and hash, and the feature layers used per metric."""
    if extractor not in EXTRACTORS:
        raise UserError(f"unknown feature extractor '{extractor}'", help=f"use one of: {', '.join(EXTRACTORS)}")
    if extractor == "auto":
        extractor = "digits" if str(reference).startswith("builtin") else "inception"
    if extractor == "inception":
        path = inception_weights(weights)
        layers = {"fid": "2048", "kid": "2048", "prc": "2048", "isc": "logits_unbiased"}
        name = INCEPTION_NAME
    else:
        if weights is not None and not Path(weights).is_file():
            raise UserError(f"digits extractor weights file not found: {weights}")
        path = digits.ensure_digits_extractor(weights)
        digits.load_digits_cnn(path)                      # a bad weights file fails now, not after sampling
        layers = {"fid": "pool", "kid": "pool", "prc": "pool", "isc": "logits_unbiased"}
        name = digits.register_digits_extractor()
    return {"name": name, "weights": str(Path(path).resolve()), "weights_sha256": digits.file_sha256(path),
            "layers": layers, "is_classifier": True}


def fidelity_metrics(input1, input2, extractor: dict, num_samples: int | None = None, reference_count: int = 0,
                     batch_size: int = 64, progress: bool = True, isc: bool = True, device="cpu") -> dict:
    """FID, KID, precision/recall (and IS of input1 when the extractor is a classifier) via torch-fidelity.

    `num_samples` is required when input1 is a generator; `reference_count` bounds the KID subset size.
    """
    from torch_fidelity import calculate_metrics
    count1 = num_samples if num_samples is not None else len(input1)
    smallest = min(count1, reference_count or count1)
    if smallest < 4:
        raise UserError(f"metrics need at least 4 images on each side, got {smallest}")
    kwargs = dict(
        input1=input1, input2=input2, cuda=torch.device(device).type == "cuda", batch_size=batch_size,
        fid=True, kid=True, prc=True, isc=isc and extractor["is_classifier"],
        feature_extractor=extractor["name"], feature_extractor_weights_path=extractor["weights"],
        feature_layer_fid=extractor["layers"]["fid"], feature_layer_kid=extractor["layers"]["kid"],
        feature_layer_prc=extractor["layers"]["prc"], feature_layer_isc=extractor["layers"]["isc"],
        kid_subset_size=min(1000, smallest), isc_splits=min(10, count1), save_cpu_ram=True, cache=False,
        verbose=False, datasets_download=False)   # its own report calls every Frechet distance "Inception"
    if num_samples is not None:
        kwargs["input1_model_num_samples"] = num_samples
    try:
        return {k: float(v) for k, v in calculate_metrics(**kwargs).items()}
    except ValueError as exc:       # torch-fidelity's vassert (e.g. mixed image sizes in a folder)
        raise UserError(f"torch-fidelity rejected the inputs: {exc}") from None


def torch_fidelity_version() -> str:
    from importlib.metadata import version
    return version("torch-fidelity")
