"""Checkpoints: atomic writes, keep-last-N, latest lookup, and loading for inference.

Training writes checkpoints and sampling, evaluation and `diffc ema` read them, so the format lives here,
below both: this module imports neither diffc.training nor diffc.sampling.

A checkpoint is one plain dict per file, `RUN/training-state-{nimg:012d}.pt`, loadable with
`torch.load(..., weights_only=True)`: tensors, numbers, strings, lists and dicts only (spec and recipe as text).
"""
from __future__ import annotations

import re
from pathlib import Path

import attrs
import torch

from diffc.errors import UserError, first_line
from diffc.files import atomic_write
from diffc.model_file import is_safetensors, read_safetensors
from diffc.parameterizations import build_parameterization

CHECKPOINT_FORMAT = "diffc-checkpoint-1"
MODEL_FORMAT = "diffc-model-1"        # one set of weights with its spec (diffc compile --save, diffc import-weights)
DEFAULT_OBJECTIVE = {"timestep": "ddpm_eps", "sigma": "edm2", "time": "flow"}   # by the spec's noise input
_NAME = re.compile(r"^training-state-(\d{12})\.pt$")
_PREFIXES = ("module.", "_orig_mod.")


def atomic_save(obj, path) -> None:
    """torch.save through diffc.files.atomic_write: a kill at any moment leaves the old or the new file."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def clean_state_dict(state: dict) -> dict:
    """Drop DDP `module.` and torch.compile `_orig_mod.` prefixes from keys."""
    out = {}
    for key, value in state.items():
        while key.startswith(_PREFIXES):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def checkpoint_path(run_dir, nimg: int) -> Path:
    return Path(run_dir) / f"training-state-{nimg:012d}.pt"


def list_checkpoints(run_dir) -> list[tuple[int, Path]]:
    folder = Path(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def save_checkpoint(run_dir, state: dict, keep: int) -> Path:
    """Write the checkpoint for state['nimg'] atomically, then delete all but the newest `keep`."""
    path = checkpoint_path(run_dir, state["nimg"])
    atomic_save({"format": CHECKPOINT_FORMAT, **state}, path)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)           # another cleaner (or the user) may have removed it already
    return path


def _tensor_dict(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


# key -> (test, what it must be): the structure a checkpoint is checked against before anything reads it
FIELDS = {
    "model": (_tensor_dict, "a dict of named tensors"),
    "ema": (lambda v: v is None or isinstance(v, dict) and all(_tensor_dict(p) for p in v.values()),
            "a dict of EMA profiles, each a dict of named tensors"),
    "spec_text": (lambda v: isinstance(v, str), "the spec's text"),
    "recipe": (lambda v: v is None or isinstance(v, dict) and isinstance(v.get("objective"), dict),
               "the resolved recipe, with an 'objective' section"),
    "nimg": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a non-negative image count"),
    "optimizer": (lambda v: isinstance(v, dict) and isinstance(v.get("param_groups"), list), "an optimizer state"),
    "weighting": (_tensor_dict, "the loss weighting's state"),
    "rng": (lambda v: isinstance(v, dict) and isinstance(v.get("torch"), torch.Tensor)
            and v["torch"].dtype == torch.uint8, "the random-number state"),
}
FOR_INFERENCE = ("model", "spec_text")                      # required; every other key present is checked too
FOR_RESUME = FOR_INFERENCE + ("ema", "recipe", "nimg", "optimizer", "weighting", "rng")


def load_checkpoint(path, formats=(CHECKPOINT_FORMAT,), needs: tuple[str, ...] = FOR_INFERENCE) -> dict:
    """Load one checkpoint file (weights_only torch.load, or safetensors) of one of `formats`; the keys in `needs`
    must be there and every key of FIELDS present must be of its kind. A bad file (empty, truncated, not a
    checkpoint, a key missing or of the wrong kind) is a UserError naming it."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise UserError("checkpoint file is empty (0 bytes)", file=str(path),
                        help="a write was cut short before it began; use an earlier checkpoint")
    try:
        data = read_safetensors(path) if is_safetensors(path) else torch.load(path, map_location="cpu",
                                                                              weights_only=True)
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError("checkpoint not found", file=str(path)) from None
    except Exception as exc:
        raise UserError(f"cannot read checkpoint ({first_line(exc)})", file=str(path),
                        help="the file is damaged (truncated?) or not a diffc checkpoint") from None
    if not isinstance(data, dict) or data.get("format") not in formats:
        raise UserError(f"not a diffc checkpoint (format {' or '.join(map(repr, formats))} expected)", file=str(path),
                        help="a released checkpoint (DiT, SiT, DTR, EDM2 .pkl) is read with --spec SPEC, or "
                             "imported first: diffc import-weights SPEC FILE -o model.pt")
    wrong = [f"'{key}' is missing" for key in needs if key not in data]
    wrong += [f"'{key}' is not {what}" for key, (test, what) in FIELDS.items() if key in data and not test(data[key])]
    if wrong:
        raise UserError("damaged checkpoint: " + "; ".join(wrong), file=str(path),
                        help="it was not written whole by diffc; use an earlier checkpoint")
    return data


def load_weights(module: torch.nn.Module, state: dict, file, what: str = "weights") -> None:
    """module.load_state_dict(state) with DDP/compile prefixes dropped; a mismatch is a UserError naming the file."""
    try:
        module.load_state_dict(clean_state_dict(state))
    except (RuntimeError, KeyError, TypeError) as exc:
        problems = [line.strip()[:160] for line in str(exc).splitlines()[1:] if line.strip()] or [first_line(exc)]
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise UserError(f"the {what} do not fit the model: " + "; ".join(problems[:3]) + more, file=str(file),
                        help="the file belongs to another model or spec, or was edited") from None


def resolve_checkpoint(path) -> Path:
    """A checkpoint file, or the latest checkpoint of a run directory."""
    path = Path(path)
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            raise UserError(f"no training-state-*.pt checkpoint in run directory {path}")
        return found[-1][1]
    if not path.exists():
        raise UserError(f"checkpoint or run directory not found: {path}")
    return path


def rebuild_model(data: dict, device="cpu"):
    """The BuiltModel of a checkpoint, compiled from its embedded spec text."""
    from diffc.compiler import build_model_from_text
    return build_model_from_text(data["spec_text"], filename=data.get("spec_path") or "<checkpoint>",
                                 model=data.get("model_name"), device=device)


@attrs.define
class InferenceBundle:
    module: torch.nn.Module
    interface: object
    objective: object
    recipe: dict
    info: dict
    guide: "InferenceBundle | None" = None     # a second network guiding this one (diffc sample --guide)
    decoder: object = None          # a latent model's diffc.autoencoder.LatentDecoder; None in pixel space


def _profile_name(ema: str, profiles: dict) -> str:
    """Accept a bare sigma_rel ("0.1", "0.100") for the one profile of that length (ema-0.100, phema-0.100)."""
    try:
        value = float(ema)
    except ValueError:
        return ema
    matches = [name for name in profiles if name.rsplit("-", 1)[-1] == f"{value:.3f}"]
    return matches[0] if len(matches) == 1 else ema


RECIPE_EMA = "recipe"        # load_for_inference(ema=RECIPE_EMA): the profile the run's sample grids used


def _recipe_profile(data: dict, file) -> str | None:
    """The run's sample.ema: a profile name, 'auto' (the first profile tracked, raw weights when none) or None."""
    wanted = ((data.get("recipe") or {}).get("sample") or {}).get("ema", "auto")
    if wanted == "auto":
        return next(iter(data.get("ema") or {}), None)
    return wanted


def load_for_inference(path, ema: str | None = None, device="cpu", vae: str | None = None) -> InferenceBundle:
    """Model in eval mode with the weights of EMA profile `ema` (None: raw weights; RECIPE_EMA: the recipe's
    sample.ema, as in the training grids), its parameterisation (diffc.parameterizations, what the samplers need
    of the training objective), recipe and, for a latent model, the decoder it was trained with (`vae`: another
    AutoencoderKL folder to decode with)."""
    file = resolve_checkpoint(path)
    data = load_checkpoint(file, (CHECKPOINT_FORMAT, MODEL_FORMAT))
    if ema == RECIPE_EMA:
        ema = _recipe_profile(data, file)         # a model file (no recipe, no EMA): its one set of weights
    if data["format"] == MODEL_FORMAT and ema is not None:
        raise UserError("this model file holds one set of weights, it has no EMA profiles", file=str(file),
                        help="drop --ema")
    if ema is None:
        weights = data["model"]
    else:
        profiles = data.get("ema") or {}
        ema = _profile_name(ema, profiles)
        if ema not in profiles:
            raise UserError(f"checkpoint has no EMA profile '{ema}'", file=str(file),
                            help="available: " + (", ".join(sorted(profiles)) or "none (use the raw weights)"))
        weights = profiles[ema]
    built = rebuild_model(data, device)
    module = built.module
    load_weights(module, weights, file, f"weights of EMA profile '{ema}'" if ema else "weights")
    module.to(device).eval().requires_grad_(False)
    recipe = data.get("recipe") or {"objective": {"kind": DEFAULT_OBJECTIVE[built.interface.noise.kind]}}
    objective = build_parameterization(recipe["objective"], built.interface, str(file))
    info = {"nimg": data.get("nimg"), "ema": ema, "spec_hash": data.get("spec_hash"), "path": str(file),
            "model_name": data.get("model_name")}
    return InferenceBundle(module, built.interface, objective, recipe, info,
                           decoder=latent_decoder(data.get("autoencoder"), vae, file, device))


def latent_decoder(record, vae, file: Path, device):
    """The LatentDecoder of an autoencoder record (None: a pixel model); `vae` replaces its autoencoder."""
    from diffc.autoencoder import LatentDecoder
    if record is None:
        if vae is not None:
            raise UserError("--vae is for latent models; this checkpoint's model works in pixel space", file=str(file))
        return None
    return LatentDecoder.from_info(record, str(file), vae, device)
