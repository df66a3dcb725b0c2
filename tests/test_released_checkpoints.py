"""Released checkpoint formats import key for key and give the outputs of the same weights loaded directly; a
malicious variant of each is refused and its payload (creating a marker file) never runs.

Each file is built here with exactly the structure of the reference code's: DiT/SiT/LayerSync training
checkpoints {"model", "ema", "opt", "args": argparse.Namespace}; DTR's {"model", "ema", "opt", "config":
OmegaConf DictConfig} with routing buffers blocks.{i}.routing._unit_mapping; EDM2 network pickles made the way
torch_utils.persistence reduces its classes (_reconstruct_persistent_obj(meta) with the module source inside).
"""
import argparse
import collections
import copyreg
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from diffc.cli import main
from diffc.compiler import build_model

MALICIOUS_SOURCE = "open({marker!r}, 'w').close()\n"


class Payload:
    """Unpickling this runs code (creates the marker file) in any loader that trusts the pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (MALICIOUS_SOURCE.format(marker=self.marker),)


def _randomised(spec, model, seed):
    """The compiled model with every parameter drawn at random (zero-initialised layers would hide mistakes)."""
    built = build_model(spec, model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in built.module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
    return built


def _outputs(module, x, t, cond):
    with torch.no_grad():
        return module.eval()(x, t, cond)[0]


def _run(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out + err


def _load_imported(path):
    from diffc.checkpoints import load_for_inference
    return load_for_inference(path)


DIT_INPUTS = (torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 500, 999]),
              {"y": torch.tensor([1, 4, 10])})


# ---- DiT / SiT / LayerSync training checkpoints ---------------------------------------------------------------
def _dit_training_checkpoint(tmp_path, extra=None):
    ema, raw = _randomised("specs/dit.diffspec", "DiT_tiny", 0), _randomised("specs/dit.diffspec", "DiT_tiny", 1)
    opt = torch.optim.AdamW(raw.module.parameters(), lr=1e-4)
    checkpoint = {"model": raw.module.state_dict(), "ema": ema.module.state_dict(), "opt": opt.state_dict(),
                  "args": argparse.Namespace(model="DiT-XL/2", image_size=256, num_classes=1000, epochs=1400,
                                             global_batch_size=256, global_seed=0, vae="ema")}
    checkpoint.update(extra or {})
    path = tmp_path / "0400000.pt"
    torch.save(checkpoint, path)
    return path, ema, raw


def test_dit_training_checkpoint_with_namespace_imports_ema_or_model(tmp_path, capsys):
    path, ema, raw = _dit_training_checkpoint(tmp_path)
    with pytest.raises(pickle.UnpicklingError, match="Namespace"):     # the Namespace is really inside
        torch.load(path, weights_only=True)
    for which, source in (("ema", ema), ("model", raw)):
        out = tmp_path / f"{which}.pt"
        code, text = _run(["import-weights", "specs/dit.diffspec", path, "--model", "DiT_tiny", "--weights", which,
                           "-o", out], capsys)
        assert code == 0, text
        imported = _load_imported(out)
        assert torch.equal(_outputs(imported.module, *DIT_INPUTS), _outputs(source.module, *DIT_INPUTS))
    assert imported.recipe["objective"]["kind"] == "ddpm_eps" and "data" not in imported.recipe   # 1 channel: pixels


def test_bare_state_dict_and_sampling_from_spec_plus_weights(tmp_path, capsys):
    """The released DiT-XL/2 file is a bare EMA state_dict; `diffc sample FILE --spec SPEC` imports it on the fly."""
    built = _randomised("specs/dit.diffspec", "DiT_tiny", 2)
    torch.save(built.module.state_dict(), tmp_path / "DiT-tiny.pt")
    code, text = _run(["sample", tmp_path / "DiT-tiny.pt", "--spec", "specs/dit.diffspec", "--model", "DiT_tiny",
                       "--n", "2", "--steps", "2", "--out", tmp_path / "samples"], capsys)
    assert code == 0, text
    with np.load(tmp_path / "samples" / "samples.npz") as data:
        assert data["arr_0"].shape == (2, 16, 16, 1)
    imported = _randomised("specs/dit.diffspec", "DiT_tiny", 9)
    from diffc.weights import import_weights
    import_weights(imported.module, tmp_path / "DiT-tiny.pt")
    assert torch.equal(_outputs(imported.module, *DIT_INPUTS), _outputs(built.module, *DIT_INPUTS))


def test_malicious_dit_checkpoint_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path, _, _ = _dit_training_checkpoint(tmp_path, {"args": Payload(marker)})
    code, text = _run(["import-weights", "specs/dit.diffspec", path, "--model", "DiT_tiny", "-o", tmp_path / "o.pt"],
                      capsys)
    assert code == 2 and "refused" in text and "exec'" in text and "Traceback" not in text
    code, text = _run(["sample", path, "--spec", "specs/dit.diffspec", "--model", "DiT_tiny", "--n", "1",
                       "--out", tmp_path / "s"], capsys)
    assert code == 2 and "refused" in text
    assert not marker.exists() and not (tmp_path / "o.pt").exists()


# ---- DTR ------------------------------------------------------------------------------------------------------
def _dtr_table(channels, beta=0.8, alpha=4, tasks=1000):
    """DTR's released mask table (dtr.md): C_beta ones from start[t] = round(linspace(0,1,T)^alpha * (C - C_beta))."""
    active = int(channels * beta)
    starts = np.round(np.linspace(0, 1, tasks) ** alpha * (channels - active)).astype(np.int64)
    table = torch.zeros(tasks, channels)
    for t, start in enumerate(starts):
        table[t, start:start + active] = 1
    return table


@pytest.fixture
def fake_omegaconf(monkeypatch):
    """A stand-in for omegaconf.dictconfig.DictConfig, so that the file names the class DTR's train.py pickles."""
    package, module = types.ModuleType("omegaconf"), types.ModuleType("omegaconf.dictconfig")

    class DictConfig:
        def __init__(self, content):
            self._content, self._metadata = dict(content), {"ref_type": "Any", "object_type": dict}

    DictConfig.__module__, DictConfig.__qualname__ = "omegaconf.dictconfig", "DictConfig"
    module.DictConfig = DictConfig
    package.dictconfig = module
    monkeypatch.setitem(sys.modules, "omegaconf", package)
    monkeypatch.setitem(sys.modules, "omegaconf.dictconfig", module)
    return DictConfig


def _dtr_checkpoint(tmp_path, config, tamper_block=None):
    built = _randomised("specs/dit_dtr.diffspec", "DiT_tiny_DTR", 3)
    state = built.module.state_dict()
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    for i in range(depth):
        table = _dtr_table(128)
        state[f"blocks.{i}.routing._unit_mapping"] = table.roll(1, dims=1) if i == tamper_block else table
    path = tmp_path / "0400000.pt"
    torch.save({"model": state, "ema": state, "opt": {}, "config": config}, path)
    return path, built


def test_dtr_checkpoint_routing_buffers_are_checked_and_imported(tmp_path, capsys, fake_omegaconf):
    config = fake_omegaconf({"models": {"name": "DiT-S/2", "routing": {"sharing_ratio": 0.8}}})
    path, built = _dtr_checkpoint(tmp_path, config)
    code, text = _run(["import-weights", "specs/dit_dtr.diffspec", path, "--model", "DiT_tiny_DTR", "-o",
                       tmp_path / "dtr.pt"], capsys)
    assert code == 0, text
    imported = _load_imported(tmp_path / "dtr.pt")
    assert torch.equal(_outputs(imported.module, *DIT_INPUTS), _outputs(built.module, *DIT_INPUTS))
    code, text = _run(["import-weights", "specs/dit.diffspec", path, "--model", "DiT_tiny", "-o",
                       tmp_path / "plain.pt"], capsys)
    assert code == 2 and "routes block 'blocks.0'" in text and "does not route it" in text


def test_dtr_routing_mismatch_names_the_block(tmp_path, capsys, fake_omegaconf):
    path, _ = _dtr_checkpoint(tmp_path, fake_omegaconf({}), tamper_block=2)
    code, text = _run(["import-weights", "specs/dit_dtr.diffspec", path, "--model", "DiT_tiny_DTR", "-o",
                       tmp_path / "dtr.pt"], capsys)
    assert code == 2 and "block 'blocks.2'" in text and "routing table" in text
    assert not (tmp_path / "dtr.pt").exists()


def test_malicious_dtr_checkpoint_is_refused_and_never_runs(tmp_path, capsys, fake_omegaconf):
    marker = tmp_path / "pwned"
    config = fake_omegaconf({"logs": Payload(marker)})
    path, _ = _dtr_checkpoint(tmp_path, config)
    code, text = _run(["import-weights", "specs/dit_dtr.diffspec", path, "--model", "DiT_tiny_DTR", "-o",
                       tmp_path / "dtr.pt"], capsys)
    assert code == 2 and "refused" in text and not marker.exists()


# ---- EDM2 network pickles -------------------------------------------------------------------------------------
@pytest.fixture
def fake_persistence(monkeypatch):
    """torch_utils.persistence and dnnlib.util as pickled names, with a reduce that mimics persistent_class."""
    persistence, util = types.ModuleType("torch_utils.persistence"), types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):       # never called by diffc: only its name is in the pickle
        raise AssertionError("the pickle was loaded by an unrestricted unpickler")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    for name, module in (("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                         ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util)):
        monkeypatch.setitem(sys.modules, name, module)
    return _reconstruct_persistent_obj, EasyDict


class Persistent:
    """Reduces as persistence.persistent_class does: (_reconstruct_persistent_obj, (meta,), None)."""

    def __init__(self, reconstruct, class_name, state, source):
        self.reconstruct, self.meta = reconstruct, dict(type="class", version=6, module_src=source,
                                                        class_name=class_name, state=state)

    def __reduce__(self):
        return self.reconstruct, (self.meta,), None


class PlainModule:
    """A torch.nn container pickled by reference, as protocol 4 writes one (NEWOBJ of the class, then BUILD with
    its __dict__): EDM2's UNet.enc/dec are torch.nn.ModuleDict."""

    def __init__(self, cls, state):
        self.cls, self.state = cls, state

    @property
    def __class__(self):                          # pickle's NEWOBJ check: the object claims the container class
        return self.cls

    def __reduce_ex__(self, protocol):
        return copyreg.__newobj__, (self.cls,), self.state


def _mimic(module, reconstruct, source, half=True):
    """The persistence-style object tree of a torch module: parameters (fp16 like a snapshot), buffers, children."""
    cast = (lambda t: t.detach().half()) if half else (lambda t: t.detach())
    state = {"training": False,
             "_parameters": collections.OrderedDict((k, None if v is None else torch.nn.Parameter(
                 cast(v), requires_grad=False)) for k, v in module._parameters.items()),
             "_buffers": collections.OrderedDict((k, cast(v)) for k, v in module._buffers.items()),
             "_non_persistent_buffers_set": set(module._non_persistent_buffers_set),
             "_modules": collections.OrderedDict((k, _mimic(m, reconstruct, source, half))
                                                 for k, m in module._modules.items()),
             "_forward_hooks": collections.OrderedDict()}
    if isinstance(module, torch.nn.ModuleDict):
        return PlainModule(torch.nn.ModuleDict, state)
    return Persistent(reconstruct, type(module).__name__, state, source)


def _edm2_pickle(path, fake_persistence, extra=None, source="import torch\n"):
    reconstruct, EasyDict = fake_persistence
    built = _randomised("specs/edm2_tiny.diffspec", None, 4)
    encoder = Persistent(reconstruct, "StabilityVAEEncoder", {
        "vae_name": "stabilityai/sd-vae-ft-mse", "scale": np.float32(0.5) / np.float32([4.17, 4.62, 3.71, 3.28]),
        "bias": np.zeros(4, np.float32), "batch_size": 8, "_vae": None}, source)
    loss = Persistent(reconstruct, "EDM2Loss", {"P_mean": -0.4, "P_std": 1.0, "sigma_data": 0.5}, source)
    data = EasyDict(encoder=encoder, dataset_kwargs=EasyDict(class_name="training.dataset.ImageFolderDataset",
                                                             path="img512-sd.zip"), loss_fn=loss)
    data["ema"] = _mimic(built.module, reconstruct, source)
    data.update(extra or {})
    with open(path, "wb") as handle:
        pickle.dump(data, handle)
    return built


@pytest.mark.parametrize("name", ["network-snapshot-0134217-0.100.pkl", "phema-0134217-0.125.pkl"])
def test_edm2_pickle_imports_without_running_its_embedded_source(tmp_path, capsys, fake_persistence, name):
    marker = tmp_path / "source-ran"
    built = _edm2_pickle(tmp_path / name, fake_persistence, source=MALICIOUS_SOURCE.format(marker=marker))
    assert b"module_src" in (tmp_path / name).read_bytes() and str(marker).encode() in (tmp_path / name).read_bytes()
    code, text = _run(["import-weights", "specs/edm2_tiny.diffspec", tmp_path / name, "-o", tmp_path / "m.pt"], capsys)
    assert code == 0, text
    imported = _load_imported(tmp_path / "m.pt")
    direct = build_model("specs/edm2_tiny.diffspec").module
    direct.load_state_dict({k: v.half() for k, v in built.module.state_dict().items()})   # the snapshot's fp16
    x, sigma = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(5)), torch.tensor([0.3, 7.0])
    cond = {"y": torch.tensor([2, 7])}
    assert torch.equal(_outputs(imported.module, x, sigma, cond), _outputs(direct, x, sigma, cond))
    assert imported.recipe["objective"]["kind"] == "edm2"
    assert not marker.exists()


def test_malicious_edm2_pickle_is_refused_and_never_runs(tmp_path, capsys, fake_persistence):
    marker = tmp_path / "pwned"
    _edm2_pickle(tmp_path / "network-snapshot-0000000.pkl", fake_persistence, extra={"hook": Payload(marker)})
    code, text = _run(["import-weights", "specs/edm2_tiny.diffspec", tmp_path / "network-snapshot-0000000.pkl",
                       "-o", tmp_path / "m.pt"], capsys)
    assert code == 2 and "refused" in text and "builtins.exec" in text and "Traceback" not in text
    assert not marker.exists() and not (tmp_path / "m.pt").exists()
