"""Metric names that say what was measured. "FID" / "KID" only for Inception-v3 features; with the digits CNN
the same statistics are "FD" / "KD (digits-CNN features)". KID is reported x10^3 (the scale papers print), and
every label names the reference set."""
from __future__ import annotations

from diffc.evaluation.fidelity import INCEPTION_NAME as INCEPTION

# torch-fidelity key -> (our key stem, scale, label stem); {F} = FID|FD, {K} = KID|KD, {feat} = the features
_TABLE = {
    "frechet_inception_distance": ("{fd}", 1.0, "{F} ({feat})"),
    "kernel_inception_distance_mean": ("{kd}_x1e3", 1e3, "{K} x10^3 ({feat})"),
    "kernel_inception_distance_std": ("{kd}_x1e3_std", 1e3, "{K} x10^3 std over subsets ({feat})"),
    "precision": ("precision", 1.0, "precision, k=3 ({feat})"),
    "recall": ("recall", 1.0, "recall, k=3 ({feat})"),
    "f_score": ("f_score", 1.0, "F-score of precision and recall ({feat})"),
    "inception_score_mean": ("{is}_mean", 1.0, "{I} ({classifier})"),
    "inception_score_std": ("{is}_std", 1.0, "{I} std over splits ({classifier})"),
}


def reference_label(reference: dict) -> str:
    kind, count = reference.get("kind"), reference.get("count")
    if kind == "builtin-digits":
        return f"built-in digits, {reference.get('split', 'all')} split ({count} images)"
    return f"{kind} {reference.get('path', '')} ({count} images)"


def name_metrics(raw: dict, extractor: str, reference: dict) -> tuple[dict, dict]:
    """(metrics under keys that say what they are, {key: human label}) from torch-fidelity's raw result."""
    inception = extractor == INCEPTION
    words = {"fd": "fid" if inception else "fd_digits_cnn", "kd": "kid" if inception else "kd_digits_cnn",
             "is": "is" if inception else "is_digits_cnn", "F": "FID" if inception else "FD",
             "K": "KID" if inception else "KD", "I": "IS",
             "feat": "Inception-v3 features" if inception else "digits-CNN features",
             "classifier": "Inception-v3 classifier" if inception else "digits-CNN classifier"}
    against = reference_label(reference)
    metrics, labels = {}, {}
    for raw_key, value in raw.items():
        stem, scale, label = _TABLE.get(raw_key, (raw_key, 1.0, raw_key))
        key = stem.format(**words)
        metrics[key] = value * scale
        labels[key] = label.format(**words) + ("" if raw_key.startswith("inception_score") else f" vs {against}")
    return metrics, labels


def headline(result: dict) -> tuple[str, str, float]:
    """(key, label, value) of the Frechet distance in an evaluation result (FID or FD, whichever was measured)."""
    key = next(k for k in result["metrics"] if k in ("fid", "fd_digits_cnn"))
    return key, result["metric_labels"][key], result["metrics"][key]
