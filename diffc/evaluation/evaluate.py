"""`evaluate_checkpoint`: sample a model, compare it to a reference with torch-fidelity, record provenance.

Also the building block of `diffc ema --sweep` (the metric of each reconstructed EMA profile).
"""
from __future__ import annotations

import time
from pathlib import Path

from diffc.evaluation.data import reference_input
from diffc.evaluation.fidelity import SeededGenerator, fidelity_metrics, resolve_extractor, torch_fidelity_version
from diffc.evaluation.names import name_metrics
from diffc.files import atomic_write, check_writable_folder, json_text
from diffc.sampling.generate import SamplerConfig, load_bundle, resolve_for, sample_pixels, to_uint8


def evaluate_bundle(bundle, reference: str = "builtin", num_samples: int = 1000, extractor: str = "auto",
                    weights=None, config: SamplerConfig = SamplerConfig(), seed: int = 0, batch_size: int = 64,
                    labels=None, progress: bool = True, device="cpu") -> dict:
    """Metrics of a loaded model (InferenceBundle-like) against `reference`, with full provenance."""
    config = resolve_for(config, bundle.objective)
    decoder = getattr(bundle, "decoder", None)      # latent models: metrics on decoded images, never on latents
    resolution = bundle.interface.sample_shape[-1] * (decoder.autoencoder.downsample if decoder else 1)
    reference_data, reference_info = reference_input(reference, resolution)
    chosen = resolve_extractor(extractor, reference, weights)
    from tqdm import tqdm
    bar = tqdm(total=num_samples, unit="img", desc="sampling", disable=not progress, leave=False)

    def draw(seeds):
        images = to_uint8(sample_pixels(bundle, seeds, config, labels, device))
        bar.update(len(seeds))
        return images
    started = time.time()
    with bar:
        raw = fidelity_metrics(SeededGenerator(draw, seed), reference_data, chosen, num_samples=num_samples,
                               reference_count=reference_info["count"], batch_size=batch_size,
                               progress=progress, device=device)
    metrics, labels = name_metrics(raw, chosen["name"], reference_info)
    info = dict(getattr(bundle, "info", {}) or {})
    return {
        "metrics": metrics,
        "metric_labels": labels,
        "provenance": {
            "checkpoint": {k: _plain(v) for k, v in info.items()},
            "ema": info.get("ema"),
            "extractor": {"name": chosen["name"], "weights": chosen["weights"],
                          "weights_sha256": chosen["weights_sha256"], "layers": chosen["layers"]},
            "num_samples": num_samples,
            "seeds": [seed, seed + num_samples - 1],
            "labels": "per-sample from seed" if labels is None else labels,
            "sampler": config.provenance(),
            "autoencoder": decoder.info if decoder else None,
            "reference": reference_info,
            "torch_fidelity": torch_fidelity_version(),
            "seconds": round(time.time() - started, 2),
        },
    }


def evaluate_checkpoint(checkpoint, ema=None, out=None, vae=None, bundle=None, **kwargs) -> dict:
    """Load `checkpoint` (file or run directory) with EMA profile `ema` (or take the loaded `bundle`), evaluate it,
    write the JSON result.

    The result goes to `out` if given, else next to the checkpoint as `eval-<ema>-<extractor>-n<N>.json`.
    Keyword arguments are those of `evaluate_bundle`. Returns the result dict, with its path under "path".
    """
    check_writable_folder(Path(out).parent if out else default_result_path(checkpoint, ema, "", 0).parent,
                          "result folder")                       # before sampling and scoring, not after
    bundle = bundle or load_bundle(checkpoint, ema=ema, device=kwargs.get("device", "cpu"), vae=vae)
    result = evaluate_bundle(bundle, **kwargs)
    result["provenance"]["ema"] = ema = ema if ema is not None else result["provenance"]["ema"]
    path = Path(out) if out else default_result_path(checkpoint, ema, result["provenance"]["extractor"]["name"],
                                                     result["provenance"]["num_samples"])
    atomic_write(path, json_text(result, indent=2) + "\n")
    result["path"] = str(path)
    return result


def default_result_path(checkpoint, ema, extractor: str, num_samples: int) -> Path:
    checkpoint = Path(checkpoint)
    folder, prefix = (checkpoint, "") if checkpoint.is_dir() else (checkpoint.parent, checkpoint.stem + ".")
    return folder / f"{prefix}eval-{ema if ema is not None else 'raw'}-{extractor}-n{num_samples}.json"


def _plain(value):
    """JSON-safe copy of a provenance value (paths and other objects as text)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)
