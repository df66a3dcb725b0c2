"""Model files as torch.save archives (.pt) or safetensors (.safetensors), written atomically, read without pickle.

A diffc model file is a dict: `model` (the state_dict) plus plain metadata (format, spec text and hash, model
name, recipe, ...). In safetensors the tensors are the state_dict and the metadata travels as JSON in the header
(`__metadata__["diffc"]`), so diffusers, ComfyUI or any safetensors reader sees an ordinary weights file.
"""
from __future__ import annotations

import json
from pathlib import Path

from diffc.errors import UserError
from diffc.files import atomic_write

FORMATS = ("pt", "safetensors")
SAFETENSORS_SUFFIX = ".safetensors"


def format_for(path, chosen: str | None) -> str:
    """--format if given, else by the file name: .safetensors -> safetensors, anything else -> pt."""
    if chosen is not None:
        return chosen
    return "safetensors" if Path(path).suffix == SAFETENSORS_SUFFIX else "pt"


def is_safetensors(path) -> bool:
    return Path(path).suffix == SAFETENSORS_SUFFIX


def save_model_file(path, state: dict, fmt: str) -> None:
    """Write `state` ({"model": state_dict, ...metadata}) atomically as `fmt` ("pt" or "safetensors")."""
    if fmt == "pt":
        import torch
        atomic_write(path, lambda handle: torch.save(state, handle))
        return
    from safetensors.torch import save
    tensors = {key: value.detach().contiguous().clone() for key, value in state["model"].items()}  # no shared storage
    metadata = {key: value for key, value in state.items() if key != "model"}
    atomic_write(path, save(tensors, metadata={"format": str(state.get("format", "")),
                                               "diffc": json.dumps(metadata, sort_keys=True, default=str)}))


def read_safetensors(path) -> dict:
    """{"model": tensors, ...the diffc metadata} of a .safetensors file (no diffc metadata: {"model": tensors})."""
    from safetensors import SafetensorError, safe_open
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:       # memory-mapped, no pickle
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
            header = handle.metadata() or {}
        extra = json.loads(header["diffc"]) if "diffc" in header else {}
    except (SafetensorError, ValueError, OSError, MemoryError) as exc:
        raise UserError(f"{path}: cannot read as safetensors ({type(exc).__name__}: {str(exc)[:200]})",
                        help="the file is damaged or not a safetensors file") from None
    if not isinstance(extra, dict):
        raise UserError(f"{path}: its diffc metadata is not a mapping")
    return {**extra, "model": tensors}
