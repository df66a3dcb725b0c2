"""A small CNN classifier trained on the built-in digits, registered into torch-fidelity as a feature extractor.

Training is reproducible (fixed seed, one thread, fixed order of mini-batches) and takes a few seconds on a CPU.
The weights are cached under `$DIFFC_CACHE` (default `~/.cache/diffc/`) and identified by their file's sha256.
Features: "pool" (64-d penultimate, for FID/KID/precision-recall) and "logits_unbiased" / "logits" (for IS).
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from diffc.errors import UserError, first_line

EXTRACTOR_NAME = "diffc-digits-cnn"
INPUT_RESOLUTION = 16
TRAIN_SEED = 0
TRAIN_EPOCHS = 15
from diffc.evaluation.data import DIGITS_HELD_OUT as HELD_OUT   # the last 297 measure accuracy; the first 1500 train


def cache_dir() -> Path:
    return Path(os.environ.get("DIFFC_CACHE") or Path.home() / ".cache" / "diffc")


def default_weights_path() -> Path:
    return cache_dir() / f"digits-cnn-r{INPUT_RESOLUTION}-seed{TRAIN_SEED}-e{TRAIN_EPOCHS}.pt"


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DigitsCNN(nn.Module):
    """uint8 RGB of any size -> grey 16x16 in [-1, 1] -> three 3x3 convs -> 64-d feature ("pool") -> 10 logits."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1, stride=2), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    @staticmethod
    def prepare(images: torch.Tensor) -> torch.Tensor:
        x = images.float().mean(1, keepdim=True) / 255.0
        if x.shape[-2:] != (INPUT_RESOLUTION, INPUT_RESOLUTION):
            x = nn.functional.interpolate(x, size=(INPUT_RESOLUTION, INPUT_RESOLUTION), mode="bilinear",
                                          align_corners=False, antialias=x.shape[-1] > INPUT_RESOLUTION)
        return x * 2 - 1

    def forward(self, images: torch.Tensor):
        pool = self.body(self.prepare(images))
        return pool, self.head(pool)


def train_digits_cnn() -> tuple[DigitsCNN, float]:
    """Train on the first 1500 digits (Adam, 15 epochs, batch 50); return the net and its held-out accuracy."""
    from diffc.evaluation.data import digits_uint8, digits_float
    images = digits_uint8(INPUT_RESOLUTION)
    labels = digits_float(INPUT_RESOLUTION)[1]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(TRAIN_SEED)
        torch.manual_seed(TRAIN_SEED)
        net = DigitsCNN()
        optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
        train_x, train_y = images[:-HELD_OUT], labels[:-HELD_OUT]
        for _ in range(TRAIN_EPOCHS):
            for batch in torch.randperm(len(train_x), generator=generator).split(50):
                loss = nn.functional.cross_entropy(net(train_x[batch])[1], train_y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        net.eval()
        with torch.no_grad():
            accuracy = (net(images[-HELD_OUT:])[1].argmax(1) == labels[-HELD_OUT:]).float().mean().item()
    finally:
        torch.set_num_threads(threads)
    return net, accuracy


def ensure_digits_extractor(path=None) -> Path:
    """The cached weights file, trained and written first if absent."""
    path = Path(path) if path else default_weights_path()
    if not path.exists():
        net, accuracy = train_digits_cnn()
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()     # saved through a buffer: the archive's inner name, hence the hash, is name-free
        torch.save({"state_dict": net.state_dict(), "held_out_accuracy": accuracy, "seed": TRAIN_SEED,
                    "epochs": TRAIN_EPOCHS, "resolution": INPUT_RESOLUTION}, buffer)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(buffer.getvalue())
        tmp.replace(path)
    return path


def load_digits_cnn(path) -> DigitsCNN:
    """The digits CNN from a weights file; a damaged or foreign file is a UserError naming it."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:              # torch raises many kinds for empty, truncated or foreign files
        raise UserError(f"cannot read feature-extractor weights ({first_line(exc)})", file=str(path)) from None
    net = DigitsCNN()
    try:
        net.load_state_dict(data["state_dict"])
    except (TypeError, KeyError, IndexError, RuntimeError) as exc:
        raise UserError(f"not digits-CNN weights ({first_line(exc)})", file=str(path),
                        help="pass weights written by diffc, or drop --weights for the cached digits CNN") from None
    return net.eval()


class DigitsFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity wrapper of DigitsCNN; weights from `feature_extractor_weights_path` or the cache."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        self.net = load_digits_cnn(ensure_digits_extractor(feature_extractor_weights_path))

    @staticmethod
    def get_provided_features_list():
        return "pool", "logits_unbiased", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "logits_unbiased" if metric == "isc" else "pool"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, INPUT_RESOLUTION, INPUT_RESOLUTION, dtype=torch.uint8)

    def forward(self, images):
        pool, logits = self.net(images)
        features = {"pool": pool, "logits_unbiased": logits - self.net.head.bias, "logits": logits}
        return tuple(features[name] for name in self.features_list)


def register_digits_extractor() -> str:
    """Register DigitsFeatureExtractor into torch-fidelity (once per process); returns its name."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor
    if EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(EXTRACTOR_NAME, DigitsFeatureExtractor)
    return EXTRACTOR_NAME

