"""Reading released pickles without running pickled code.

EDM2 publishes `network-snapshot-*.pkl` / `phema-*.pkl` made with its `torch_utils.persistence`: each network
class is pickled as a call `_reconstruct_persistent_obj(meta)` whose `meta` holds the class's module source
code and the object's state (its `__dict__`); loading them the ordinary way executes that source. Training
checkpoints of the DiT family may hold configuration objects (an `argparse.Namespace`, DTR's OmegaConf
config) next to the weights.

`RestrictedUnpickler` rebuilds tensors and containers for real and nothing else: every other name the file
mentions is either refused or, when it is part of these formats' structure, replaced by an inert placeholder
that records its arguments and state without importing or calling anything. Embedded source is kept as text
and never compiled. Storages come from torch.load(weights_only=True) (plain pickles) or straight from the
zip archive (torch.save files).
"""
from __future__ import annotations

import importlib
import io
import pickle
import warnings
import zipfile

import torch

# Tensors, parameters, containers: rebuilt for real (the same set torch's weights_only loader trusts).
_REAL = {
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"), ("collections", "OrderedDict"),
    ("torch", "Size"), ("torch", "device"),
    *(("builtins", t) for t in ("set", "frozenset", "dict", "list", "tuple", "int", "float", "str", "bool", "bytes",
                                 "complex", "object")),              # plain types, e.g. a config's object_type
}
_RENAMED = {"__builtin__": "builtins", "copy_reg": "copyreg"}    # protocol 2 pickles use the Python 2 names
# Modules whose classes are only structure here: modules (nn containers, EDM2's networks, loss and encoder),
# configuration objects, numpy arrays in an encoder's state. They become placeholders, never imported.
_INERT_MODULES = ("torch.nn.modules.", "torch_utils.", "training.", "dnnlib.", "argparse", "omegaconf.",
                  "numpy", "typing")


class RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"the file asks to run or import '{module}.{name}', which a checkpoint never needs")
        self.qualified = f"{module}.{name}"


class Inert(dict):
    """Placeholder for a class or function a file names: remembers the call arguments and the state set on
    it (dict items too, for dict subclasses such as EDM2's EasyDict), and does nothing else."""
    pickled_name = ""
    args: tuple = ()
    state = None

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self.pickled_name}>"


class PersistentObject(Inert):
    """An EDM2 `persistence` object: its class name and state; the embedded module source is kept as text."""
    pickled_name = "torch_utils.persistence._reconstruct_persistent_obj"

    def __init__(self, meta):
        super().__init__()
        meta = meta if isinstance(meta, dict) else {}
        self.class_name = str(meta.get("class_name", "?"))
        self.module_src = meta.get("module_src")          # text only: never compiled or executed
        self.state = meta.get("state")


def _inert_class(qualified: str) -> type:
    return type(qualified.rsplit(".", 1)[-1], (Inert,), {"pickled_name": qualified})


def _storage_from_bytes(data: bytes):
    """A storage pickled by TypedStorage.__reduce__ (torch.save's legacy format), read with weights_only=True."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _reconstructor(cls, base, state):
    """copyreg._reconstructor for placeholder classes only."""
    if not (isinstance(cls, type) and issubclass(cls, Inert)):
        raise RefusedGlobal("copyreg", f"_reconstructor({getattr(cls, '__name__', cls)})")
    return cls.__new__(cls)


class RestrictedUnpickler(pickle.Unpickler):
    """find_class allows the tensor/container rebuilders; structure names map to inert placeholders; anything
    else (os.system, builtins.exec, eval, getattr, subprocess, ...) raises RefusedGlobal."""

    def __init__(self, file, storages=None):
        super().__init__(file)
        self._storages = storages
        self._inert: dict[str, type] = {}

    def find_class(self, module: str, name: str):
        module = _RENAMED.get(module, module)
        if (module, name) in _REAL:
            return getattr(importlib.import_module(module), name)
        if module == "torch" and (name.endswith("Storage") or isinstance(getattr(torch, name, None), torch.dtype)):
            return getattr(torch, name)
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _storage_from_bytes
        if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return PersistentObject
        if (module, name) == ("copyreg", "_reconstructor"):
            return _reconstructor
        if any(module == prefix.rstrip(".") or module.startswith(prefix) for prefix in _INERT_MODULES):
            qualified = f"{module}.{name}"
            return self._inert.setdefault(qualified, _inert_class(qualified))
        raise RefusedGlobal(module, name)

    def persistent_load(self, pid):
        if self._storages is None:
            raise pickle.UnpicklingError("this pickle refers to external storages (not a plain pickle)")
        return self._storages(pid)


def load_pickle(path):
    """A plain pickle file (EDM2 snapshots) through RestrictedUnpickler."""
    with open(path, "rb") as handle:
        return RestrictedUnpickler(handle).load()


def load_torch_zip(path):
    """A torch.save zip archive through RestrictedUnpickler, storages read from the archive's records."""
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise pickle.UnpicklingError("not a torch.save archive (no single */data.pkl)")
        root = pickles[0][: -len("data.pkl")]
        byteorder = archive.read(root + "byteorder").decode() if root + "byteorder" in archive.namelist() else "little"
        if byteorder != "little":
            raise pickle.UnpicklingError(f"storages in {byteorder}-endian order are not supported")
        loaded = {}

        def storage(pid):
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
                raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:80]}")
            _, storage_type, key, _location, numel = pid
            if key not in loaded:
                with warnings.catch_warnings():          # torch.<X>Storage.dtype warns that typed storages are legacy
                    warnings.simplefilter("ignore")
                    dtype = storage_type.dtype if hasattr(storage_type, "dtype") else storage_type
                if not isinstance(dtype, torch.dtype):
                    raise pickle.UnpicklingError(f"unexpected storage type {storage_type!r}")
                raw = bytearray(archive.read(f"{root}data/{key}"))
                untyped = torch.frombuffer(raw, dtype=torch.uint8).untyped_storage() if raw else torch.UntypedStorage(0)
                loaded[key] = torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)
            return loaded[key]

        return RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), storages=storage).load()


def module_state_dict(obj, prefix: str = "") -> dict:
    """The state_dict of a placeholder module tree (EDM2 persistence objects, torch.nn containers): parameters,
    then persistent buffers, then submodules, as torch.nn.Module.state_dict orders them."""
    state = obj.state if isinstance(obj, Inert) else None
    if not isinstance(state, dict):
        raise pickle.UnpicklingError(f"'{prefix.rstrip('.') or 'network'}' is not a module")
    out = {}
    for name, value in (state.get("_parameters") or {}).items():
        if value is not None:
            out[prefix + name] = value
    skipped = state.get("_non_persistent_buffers_set") or set()
    for name, value in (state.get("_buffers") or {}).items():
        if value is not None and name not in skipped:
            out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_state_dict(child, f"{prefix}{name}."))
    bad = [k for k, v in out.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise pickle.UnpicklingError(f"'{bad[0]}' is not a tensor")
    return out
