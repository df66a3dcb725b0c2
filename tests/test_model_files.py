"""Model files in safetensors: compile --save and import-weights write them (--format or the .safetensors suffix),
every reader of weights accepts them, and they hold exactly the tensors of the .pt file."""
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import ROOT  # noqa: E402

from diffc import checkpoints as ckpt
from diffc.cli import main
from diffc.errors import UserError
from diffc.model_file import read_safetensors
from diffc.weights import read_state_dict

SPEC = ROOT / "specs" / "dit_dtr.diffspec"


def _cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main([*map(str, args)])
    out = capsys.readouterr()
    assert info.value.code == 0, out.err
    return out.out


def test_compile_save_writes_the_same_tensors_as_safetensors(tmp_path, capsys):
    _cli(["compile", SPEC, "--save", tmp_path / "m.pt"], capsys)
    _cli(["compile", SPEC, "--save", tmp_path / "m.safetensors"], capsys)          # format from the suffix
    _cli(["compile", SPEC, "--save", tmp_path / "weights.bin", "--format", "safetensors"], capsys)
    pt = torch.load(tmp_path / "m.pt", weights_only=True)
    plain = load_file(tmp_path / "m.safetensors")                                  # any safetensors reader
    assert plain.keys() == pt["model"].keys() and all(torch.equal(plain[k], pt["model"][k]) for k in plain)
    ours = read_safetensors(tmp_path / "weights.bin")
    assert ours["spec_hash"] == pt["spec_hash"] and ours["model_name"] == pt["model_name"]
    assert ours["format"] == "diffc-model-1" and ours["seed"] == 0
    bundle = ckpt.load_for_inference(tmp_path / "m.safetensors")                   # sample/eval read it
    assert all(torch.equal(bundle.module.state_dict()[k], pt["model"][k]) for k in pt["model"])


def test_import_weights_reads_and_writes_safetensors(tmp_path, capsys):
    _cli(["compile", SPEC, "--save", tmp_path / "init.pt", "--seed", "3"], capsys)
    state = torch.load(tmp_path / "init.pt", weights_only=True)["model"]
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "released.safetensors")
    assert read_state_dict(tmp_path / "released.safetensors").keys() == state.keys()
    _cli(["import-weights", SPEC, tmp_path / "released.safetensors", "-o", tmp_path / "model.safetensors"], capsys)
    bundle = ckpt.load_for_inference(tmp_path / "model.safetensors")
    assert all(torch.equal(bundle.module.state_dict()[k], state[k]) for k in state)


def test_a_damaged_safetensors_file_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(UserError, match="cannot read as safetensors"):
        read_state_dict(bad)
    with pytest.raises(UserError, match="cannot read as safetensors"):
        ckpt.load_checkpoint(bad)
