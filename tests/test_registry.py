"""The registry: plugins through the entry-point group, docs and signatures, no torch in check/blocks/fmt,
and no way for a spec to reach Python."""
import os
import subprocess
import sys
import textwrap

import pytest
from cli_helpers import ROOT, run_cli

from diffc.compiler import compile_program
from diffc.compiler.program import load_text
from diffc.errors import UserError
from diffc.registry import REGISTRY

PLUGIN = '''
import attrs
from diffc.registry import block

@block("double_it", inputs=("x",), module="fakeplugin_nn:DoubleIt", tags={"stateless"})
class DoubleIt:
    """Multiply by two (a test plugin, no paper)."""
    def infer(self, x):
        return x
'''
PLUGIN_NN = '''
from torch import nn

class DoubleIt(nn.Module):
    def __init__(self, p, in_shapes, out_shapes):
        super().__init__()

    def forward(self, x):
        return 2 * x
'''


@pytest.fixture
def plugin_path(tmp_path):
    (tmp_path / "fakeplugin_blocks.py").write_text(PLUGIN)
    (tmp_path / "fakeplugin_nn.py").write_text(PLUGIN_NN)
    info = tmp_path / "fakeplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[diffc.blocks]\nfake = fakeplugin_blocks\n")
    return tmp_path


def test_plugin_blocks_register_through_entry_points(plugin_path, tmp_path):
    spec = tmp_path / "p.diffspec"
    spec.write_text("model M() {\n  input x: sample[1, 4, 4]\n  input t: sigma\n  return double_it(x)\n}\n")
    env = dict(os.environ, PYTHONPATH=f"{plugin_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    listing = subprocess.run([sys.executable, "-m", "diffc", "blocks", "--search", "double"], cwd=ROOT, env=env,
                             capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert "double_it(x) -> out  [stateless]  (from fake)" in listing.stdout
    code = textwrap.dedent(f"""
        import torch
        from diffc.compiler import build_model
        b = build_model({str(spec)!r})
        x = torch.randn(2, 1, 4, 4)
        assert torch.equal(b.module(x, torch.ones(2))[0], 2 * x)
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.stdout.strip() == "ok", run.stderr


def test_every_block_documents_its_paper_and_parameters():
    REGISTRY.load()
    for name, info in REGISTRY.blocks.items():
        assert info.doc and len(info.doc) > 20, name
        assert info.signature().startswith(name + "(")
        assert ":" in info.module
    assert {"route", "stage", "sync", "mp"} <= set(REGISTRY.annotations)


@pytest.mark.parametrize("command", [["check", "specs/dit.diffspec"], ["blocks"],
                                     ["fmt", "specs/dit.diffspec"]])
def test_language_commands_never_import_torch(command):
    code = ("import sys\nfrom diffc.cli import main\ntry:\n    main(%r)\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\nassert 'torch' not in sys.modules, 'torch was imported'\n" % command)
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("source", [
    'model M() { input x: sample[1,2,2]\n input t: sigma\n return __import__("os") }',
    'model M() { input x: sample[1,2,2]\n input t: sigma\n return eval(x) }',
    'model M() { input x: sample[1,2,2]\n input t: sigma\n return x.__class__ }',
])
def test_specs_cannot_reach_python(source):
    with pytest.raises(UserError):
        compile_program(load_text(source, "evil.diffspec"))


def test_importing_a_python_file_is_a_syntax_error(tmp_path):
    (tmp_path / "evil.diffspec").write_text("import os\nos.system('echo hi')\n")
    code, out, err = run_cli(["check", tmp_path / "evil.diffspec"])
    assert code == 2 and "evil.diffspec:1:8: error: unexpected 'os': expected a string" in err


def test_every_mp_form_is_a_registered_mp_block():
    REGISTRY.load()
    for name, info in REGISTRY.blocks.items():
        if info.mp_form is not None:
            target = REGISTRY.blocks.get(info.mp_form)
            assert target is not None, f"{name}.mp_form = {info.mp_form} is not registered"
            assert "mp" in target.tags, info.mp_form
