"""`diffc export`: every shipped spec's small models as standalone files, run where diffc cannot be imported."""
import ast
import subprocess
import sys

import pytest
import torch

from diffc.compiler import build_model, compile_spec
from diffc.compiler.export import export_source

from cli_helpers import run_cli
from small_models import MODELS, SPECS, inputs

# Runs in a fresh interpreter (-I: no PYTHONPATH, no user site, no script folder) with diffc blocked.
RUNNER = r'''
import importlib.abc, importlib.util, sys
class NoDiffc(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "diffc" or name.startswith("diffc."):
            raise ImportError("diffc is blocked in this process")
sys.meta_path.insert(0, NoDiffc())
try:
    import diffc
    raise SystemExit("diffc is importable")
except ImportError:
    pass
import torch
cases = torch.load(sys.argv[1], weights_only=False)
results = {}
for key, case in cases.items():
    spec = importlib.util.spec_from_file_location("exported_" + key, case["file"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = getattr(module, case["class"])
    torch.manual_seed(0)
    fresh = cls()
    model = cls()
    model.load_state_dict(case["state"], strict=True)
    model.eval()
    with torch.no_grad():
        pred, aux = model(case["x"], case["t"], case["cond"])
    results[key] = {"init": fresh.state_dict(), "pred": pred, "aux": aux}
torch.save(results, sys.argv[2])
'''


def test_every_shipped_small_model_runs_standalone_with_identical_outputs(tmp_path):
    cases, expected = {}, {}
    gen = torch.Generator().manual_seed(0)
    for spec, name in MODELS:
        compiled = compile_spec(SPECS / f"{spec}.diffspec", name)
        source = export_source(compiled)
        imported = {a.names[0].name.split(".")[0] for a in ast.walk(ast.parse(source)) if isinstance(a, ast.Import)}
        imported |= {a.module.split(".")[0] for a in ast.walk(ast.parse(source)) if isinstance(a, ast.ImportFrom)}
        assert imported <= {"torch", "einops", "math", "typing", "types", "__future__"}, imported
        path = tmp_path / f"{name}.py"
        path.write_text(source)
        torch.manual_seed(0)
        module = build_model(SPECS / f"{spec}.diffspec", name).module
        init = {k: v.clone() for k, v in module.state_dict().items()}
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        x, t, cond = inputs(compiled.interface, gen)
        with torch.no_grad():
            pred, aux = module.eval()(x, t, cond)
        cases[name] = {"file": str(path), "class": name, "state": module.state_dict(), "x": x, "t": t, "cond": cond}
        expected[name] = (init, pred, aux)
    torch.save(cases, tmp_path / "cases.pt")
    proc = subprocess.run([sys.executable, "-I", "-c", RUNNER, str(tmp_path / "cases.pt"), str(tmp_path / "out.pt")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = torch.load(tmp_path / "out.pt", weights_only=False)
    for name, (init, pred, aux) in expected.items():
        got = results[name]
        assert list(got["init"]) == list(init), name                 # same keys, same order
        assert all(torch.equal(got["init"][k], v) for k, v in init.items()), name   # same init from one seed
        assert torch.equal(got["pred"], pred), name
        assert got["aux"].keys() == aux.keys() and all(torch.equal(got["aux"][k], aux[k]) for k in aux), name


def test_export_command_writes_the_file_and_rejects_a_bad_spec(tmp_path):
    out = tmp_path / "dit.py"
    code, _, err = run_cli(["export", SPECS / "dit_dtr.diffspec", "--model", "DiT_tiny_DTR", "-o", out])
    assert code == 0, err
    assert "class DiT_tiny_DTR(nn.Module)" in out.read_text() and "import diffc" not in out.read_text()
    bad = tmp_path / "bad.diffspec"
    bad.write_text("diffspec 1\nmodel M() {\n  input x: sample[1, 8, 8]\n  return nope(x)\n}\n")
    out.write_text("keep me")
    code, _, err = run_cli(["export", bad, "-o", out], cwd=tmp_path)
    assert code == 2
    assert "bad.diffspec:4:" in err and "Traceback" not in err
    assert out.read_text() == "keep me"                               # nothing half-written
    code, _, err = run_cli(["export", SPECS / "dit.diffspec", "--model", "DiT_tiny", "-o", out / "x.py"])
    assert code == 2 and "cannot write" in err and "Traceback" not in err    # under a file, not a folder


@pytest.mark.parametrize("value, text", [(float("inf"), "float('inf')"), ("a'b", "\"a'b\""), ((1,), "(1,)"),
                                         ([0.5, None, True], "[0.5, None, True]")])
def test_parameter_literals_read_back_as_the_same_value(value, text):
    from diffc.compiler.export import literal
    assert literal(value) == text
    assert eval(text) == value
