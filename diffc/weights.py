"""Importing reference checkpoints into compiled models: keys must match one for one (diffc.import_weights)."""
from __future__ import annotations

from pathlib import Path

from diffc.errors import UserError


def read_state_dict(path: str | Path) -> dict:
    """A state_dict from a .pt file: a bare dict of tensors, or under "model"/"ema"/"state_dict"."""
    import torch
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or pickled files
        raise UserError(f"{path}: cannot read weights ({type(exc).__name__}: {str(exc).splitlines()[0]})",
                        help="expected a torch.save'd state_dict loadable with weights_only=True") from None
    for key in ("ema", "model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict) and obj[key] and \
                all(hasattr(v, "shape") for v in obj[key].values()):
            return obj[key]
    if isinstance(obj, dict) and obj and all(hasattr(v, "shape") for v in obj.values()):
        return obj
    raise UserError(f"{path}: no state_dict found (keys: {', '.join(map(str, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__})")


def import_state_dict(module, state: dict) -> None:
    """Copy `state` into `module` strictly: every key present, no extra key, equal shapes; else a clear error."""
    own = module.state_dict()
    prefixes = ("module.", "_orig_mod.")
    cleaned = {}
    for key, value in state.items():
        for prefix in prefixes:
            while key.startswith(prefix):
                key = key[len(prefix):]
        cleaned[key] = value
    missing = [k for k in own if k not in cleaned]
    extra = [k for k in cleaned if k not in own]
    bad = [f"{k}: file {tuple(cleaned[k].shape)} vs model {tuple(own[k].shape)}" for k in own
           if k in cleaned and tuple(cleaned[k].shape) != tuple(own[k].shape)]
    if missing or extra or bad:
        notes = []
        if missing:
            notes.append(f"{len(missing)} key(s) missing from the file, e.g. {', '.join(missing[:3])}")
        if extra:
            notes.append(f"{len(extra)} key(s) the model does not have, e.g. {', '.join(extra[:3])}")
        notes += [f"shape mismatch {b}" for b in bad[:5]]
        raise UserError("the weights do not match the compiled model key for key", notes=notes,
                        help="check --model (e.g. the patch size or learn_sigma) matches the checkpoint")
    module.load_state_dict(cleaned, strict=True)


def import_weights(module, path_or_state) -> None:
    """Public API: load a reference state_dict (path or dict) into a compiled module."""
    state = read_state_dict(path_or_state) if isinstance(path_or_state, (str, Path)) else path_or_state
    import_state_dict(module, state)
