"""Metrics say what they are: FD/KD with the digits CNN, FID/KID only with Inception-v3, KID x10^3, the reference
named; the built-in reference is a held-out split the default training data does not contain."""
from pathlib import Path

import pytest
import torch

from diffc.evaluation.data import digits_uint8, reference_input
from diffc.evaluation.fidelity import INCEPTION_NAME
from diffc.evaluation.names import headline, name_metrics
from diffc.training.data import build_dataset
from diffc.training.recipe import DataConfig
from diffc.interface import ModelInterface, NoiseInput

RAW = {"frechet_inception_distance": 12.5, "kernel_inception_distance_mean": 0.0042,
       "kernel_inception_distance_std": 0.0003, "precision": 0.7, "recall": 0.6, "f_score": 0.65,
       "inception_score_mean": 8.1, "inception_score_std": 0.2}
HELD_OUT = {"kind": "builtin-digits", "split": "held-out", "count": 297}


def test_digits_features_are_fd_and_kd_never_inception():
    metrics, labels = name_metrics(RAW, "diffc-digits-cnn", HELD_OUT)
    assert metrics["fd_digits_cnn"] == 12.5 and metrics["kd_digits_cnn_x1e3"] == pytest.approx(4.2)
    assert metrics["kd_digits_cnn_x1e3_std"] == pytest.approx(0.3) and metrics["precision"] == 0.7
    assert labels["fd_digits_cnn"] == "FD (digits-CNN features) vs built-in digits, held-out split (297 images)"
    assert not any("Inception" in label or "FID" in label or "KID" in label for label in labels.values())
    assert headline({"metrics": metrics, "metric_labels": labels}) == ("fd_digits_cnn", labels["fd_digits_cnn"], 12.5)


def test_inception_features_are_fid_and_kid_x1e3():
    metrics, labels = name_metrics(RAW, INCEPTION_NAME, {"kind": "folder", "path": "/ref", "count": 50000})
    assert set(metrics) == {"fid", "kid_x1e3", "kid_x1e3_std", "precision", "recall", "f_score", "is_mean", "is_std"}
    assert metrics["kid_x1e3"] == pytest.approx(4.2)
    assert labels["fid"] == "FID (Inception-v3 features) vs folder /ref (50000 images)"
    assert labels["kid_x1e3"].startswith("KID x10^3")


def test_builtin_reference_is_held_out_from_the_default_training_data():
    reference, info = reference_input("builtin", 16)
    assert info["split"] == "held-out" and info["count"] == len(reference) == 297
    everything = digits_uint8(16)
    assert torch.equal(reference.images, everything[1500:])
    interface = ModelInterface((1, 16, 16), 1, NoiseInput("t", "timestep", 1000), (), {}, ())
    training = build_dataset(DataConfig(), interface, Path("."))
    assert len(training) == 1500 and len(reference_input("builtin-train", 16)[0]) == 1500
    assert len(reference_input("builtin-all", 16)[0]) == 1797
