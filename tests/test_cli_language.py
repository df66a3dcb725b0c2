"""`diffc compile --save`, `diffc blocks --search`, `diffc check --all` through the CLI."""
import torch
from cli_helpers import run_cli
from click.testing import CliRunner

from diffc.cli import cli
from diffc.compiler import build_model


def test_compile_save_writes_an_initialised_loadable_model(tmp_path):
    out = tmp_path / "tiny.pt"
    result = CliRunner().invoke(cli, ["compile", "specs/dit.diffspec", "--model", "DiT_tiny", "--save", str(out)])
    assert result.exit_code == 0, result.output
    saved = torch.load(out, weights_only=True)
    built = build_model("specs/dit.diffspec", "DiT_tiny")
    assert set(saved["model"]) == set(built.module.state_dict())
    built.module.load_state_dict(saved["model"])
    assert saved["spec_hash"] == built.spec_hash and saved["model_name"] == "DiT_tiny"
    assert not list(tmp_path.glob(".*.tmp"))            # the atomic write left no temporary file


def test_blocks_search_and_miss():
    code, out, err = run_cli(["blocks", "--search", "adaLN"])
    assert code == 0 and "dit_block(x, c, heads: int, mlp_ratio: float = 4.0)" in out
    code, out, err = run_cli(["blocks", "--search", "nonexistentword"])
    assert code == 2 and "no block or annotation matches 'nonexistentword'" in err


def test_check_all_models_of_a_spec():
    code, out, err = run_cli(["check", "specs/dit_dtr.diffspec", "--all"])
    assert code == 0, err
    assert "ok: DiT_XL_2_DTR: 39 nodes, sample [4, 32, 32] -> 8 channels" in out
    assert "checked 5 model(s)" in out
