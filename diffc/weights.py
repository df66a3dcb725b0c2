"""Importing reference checkpoints into compiled models: keys must match one for one (diffc.import_weights).

Formats read (no pickled code ever runs; see diffc.safe_unpickle):
- bare state_dicts (released DiT-XL/2, SiT-XL/2), `{"state_dict": ...}`;
- DiT / SiT / LayerSync training checkpoints `{"model", "ema", "opt", "args": argparse.Namespace}` through
  torch.load(weights_only=True) with Namespace on the allow-list; `weights` picks "ema" or "model";
- DTR training checkpoints (their OmegaConf `config` becomes an inert placeholder) with persistent routing
  buffers `blocks.{i}.routing._unit_mapping`, checked against the compiled mask tables (check_routing);
- EDM2 `network-snapshot-*.pkl` / `phema-*.pkl` (torch_utils.persistence pickles) through the restricted
  unpickler; their `ema` network's state_dict matches the EDM2 specs key for key.
"""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

from diffc.errors import UserError

WEIGHT_CHOICES = ("ema", "model")
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C          # first pickle of torch.save's pre-zip format
_ROUTING_KEY = re.compile(r"^(?P<block>.+)\.routing\._unit_mapping$")


def _is_state_dict(obj) -> bool:
    import torch
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _load_torch(path: Path):
    """A torch.save file: torch.load(weights_only=True) with argparse.Namespace allowed; if it names other
    configuration classes (DTR's OmegaConf), the restricted reader of diffc.safe_unpickle with inert stand-ins."""
    import argparse

    import torch

    from diffc.safe_unpickle import load_torch_zip
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not zipfile.is_zipfile(path):
            raise
        return load_torch_zip(path)


def read_checkpoint(path: str | Path):
    """The unpickled content of a weights file (.pt/.pth torch.save archive or EDM2 .pkl); a UserError naming the
    file for anything unreadable or for a pickle that asks to run code."""
    from diffc.safe_unpickle import RefusedGlobal, load_pickle
    from diffc.model_file import is_safetensors, read_safetensors
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    if is_safetensors(path):
        return read_safetensors(path)["model"]
    try:
        if zipfile.is_zipfile(path):
            return _load_torch(path)
        obj = load_pickle(path)
        return _load_torch(path) if obj == _LEGACY_MAGIC else obj
    except RefusedGlobal as exc:
        raise UserError(f"{path}: refused: {exc}; nothing from it was run",
                        help="only weights files are read (torch.save state_dicts and training checkpoints, "
                             "EDM2 network pickles); do not load this file with pickle or torch.load") from None
    except Exception as exc:  # torch and pickle raise many types for damaged files
        first = (str(exc).splitlines() or [""])[0][:300]
        raise UserError(f"{path}: cannot read weights ({type(exc).__name__}: {first})",
                        help="expected a state_dict, a DiT/SiT/DTR training checkpoint or an EDM2 network "
                             "pickle") from None


def read_state_dict(path: str | Path, weights: str = "ema") -> dict:
    """The state_dict in a weights file: `weights` ("ema" | "model") of a training checkpoint, the `ema`
    network of an EDM2 pickle, or a bare / "state_dict" dict of tensors."""
    from diffc.safe_unpickle import Inert, module_state_dict
    if weights not in WEIGHT_CHOICES:
        raise UserError(f"--weights must be one of {', '.join(WEIGHT_CHOICES)}, got '{weights}'")
    obj = read_checkpoint(path)
    if isinstance(obj, dict) and isinstance(obj.get("ema"), Inert):          # EDM2 snapshot / phema pickle
        if weights != "ema":
            raise UserError(f"{path}: an EDM2 network pickle holds only its EMA network", help="use --weights ema")
        try:
            return module_state_dict(obj["ema"])
        except pickle.UnpicklingError as exc:
            raise UserError(f"{path}: the 'ema' network cannot be read ({exc})") from None
    if isinstance(obj, dict) and any(_is_state_dict(obj.get(k)) for k in WEIGHT_CHOICES):
        if not _is_state_dict(obj.get(weights)):
            have = [k for k in WEIGHT_CHOICES if _is_state_dict(obj.get(k))]
            raise UserError(f"{path}: the checkpoint has no '{weights}' weights", help=f"use --weights {have[0]}")
        return obj[weights]
    if isinstance(obj, dict) and _is_state_dict(obj.get("state_dict")):
        return obj["state_dict"]
    if _is_state_dict(obj):
        return obj
    keys = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__
    raise UserError(f"{path}: no state_dict found (keys: {keys})")


def check_routing(built, state: dict) -> dict:
    """`state` without DTR's persistent routing buffers, each checked equal to the compiled mask table of its
    block (a mismatch, or a routed block the spec does not route, is an error naming the block)."""
    import torch

    from diffc.compiler.ir import nodes_in_order
    from diffc.methods.route import route_table
    tables = {node.name: (node.meta["route_channels"], node.meta["route"])
              for node in nodes_in_order(built.compiled.graph) if "route" in node.meta}
    rest = {}
    for key, value in state.items():
        match = _ROUTING_KEY.match(key)
        if match is None:
            rest[key] = value
            continue
        block = match.group("block")
        for prefix in ("module.", "_orig_mod."):
            block = block.removeprefix(prefix)
        if block not in tables:
            raise UserError(f"the checkpoint routes block '{block}' (DTR buffer {key}), but {built.model_name} does "
                            "not route it", help="import into the DTR model of the spec (@route), e.g. --model "
                                                 "DiT_S_2_DTR")
        channels, p = tables[block]
        expected = route_table(channels, p.window, p.weight, p.tasks)
        if tuple(value.shape) != tuple(expected.shape) or not torch.equal(value.float().cpu(), expected):
            raise UserError(f"block '{block}': the checkpoint's DTR routing table {tuple(value.shape)} differs from "
                            f"the compiled one {tuple(expected.shape)} (window {p.window}, weight {p.weight}, "
                            f"{p.tasks} tasks)", help="match @route(window, weight) to the run that trained it")
    return rest


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


def import_weights(target, path_or_state, weights: str = "ema") -> None:
    """Public API: load reference weights (a file or a state_dict) into a compiled module, or into a BuiltModel
    (diffc.compiler.build_model), whose DTR routing tables are then checked against the file's buffers."""
    state = read_state_dict(path_or_state, weights) if isinstance(path_or_state, (str, Path)) else path_or_state
    if hasattr(target, "compiled"):
        state, target = check_routing(target, state), target.module
    import_state_dict(target, state)


def imported_metadata(interface, objective: str | None = None, latent: bool | None = None):
    """(recipe, autoencoder record) an imported model samples with: its objective (default by the noise input:
    timestep -> ddpm_eps, sigma -> edm2, time -> flow) and, for a latent model (default: 4 sample channels, the
    SD-VAE latents of every released DiT/SiT/DTR/EDM2-img512 model), the decoder: sd-vae-ft-mse (DiT's
    sample.py, EDM2) in the SD convention (x 0.18215) or, for EDM2, its StabilityVAEEncoder convention."""
    from diffc.autoencoder import edm2_convention, sd_convention
    from diffc.checkpoints import DEFAULT_OBJECTIVE
    kind = objective or DEFAULT_OBJECTIVE[interface.noise.kind]
    recipe = {"objective": {"kind": kind}}
    if not (latent if latent is not None else interface.sample_shape[0] == 4):
        return recipe, None
    recipe["data"] = {"name": "latents"}
    channels = interface.sample_shape[0]
    convention = edm2_convention() if kind == "edm2" and channels == 4 else sd_convention(channels)
    return recipe, {"source": "stabilityai/sd-vae-ft-mse", "convention": convention.to_dict()}


def load_released(spec, path, model=None, weights: str = "ema", objective=None, latent=None, device="cpu",
                  vae=None):
    """An InferenceBundle (diffc.checkpoints) of SPEC's model with the weights of a released file; `vae` is the
    AutoencoderKL folder a latent model decodes with."""
    from diffc.checkpoints import InferenceBundle, latent_decoder
    from diffc.compiler import build_model
    from diffc.parameterizations import build_parameterization
    state = read_state_dict(path, weights)
    built = build_model(spec, model, device="cpu")
    import_weights(built, state)
    recipe, autoencoder = imported_metadata(built.interface, objective, latent)
    module = built.module.to(device).eval().requires_grad_(False)
    info = {"path": str(path), "weights": weights, "model_name": built.model_name, "spec_hash": built.spec_hash}
    objective = build_parameterization(recipe["objective"], built.interface, str(path))
    return InferenceBundle(module, built.interface, objective, recipe, info,
                           decoder=latent_decoder(autoencoder, vae, Path(path), device))
