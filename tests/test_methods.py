"""The method API: pass order from before/after, impossible orders, unimplemented annotations, Node.meta."""
import os
import subprocess
import sys

import attrs
import pytest
from cli_helpers import ROOT

from diffc.compiler import compile_spec
from diffc.errors import UserError
from diffc.methods import Method, pass_order
from diffc.registry import REGISTRY, MethodInfo


@attrs.define
class FakeRegistry:
    methods: dict

    def load(self):
        return self


def fake(name, before=(), after=(), origin="diffc"):
    return MethodInfo(name, Method, (name,), tuple(before), tuple(after), "doc", origin)


def test_builtin_pass_order_is_derived_from_the_declarations():
    assert [m.name for m in pass_order()] == ["mp", "route", "stage", "sync", "taps"]
    for info in REGISTRY.methods.values():
        assert set(info.after) <= set(REGISTRY.methods) and info.doc


def test_order_follows_constraints_not_names():
    registry = FakeRegistry({m.name: m for m in [fake("a", after=("z",)), fake("z"), fake("m", before=("a",)),
                                                 fake("b", after=("not_installed",))]})
    assert [m.name for m in pass_order(registry)] == ["b", "m", "z", "a"]


def test_an_impossible_order_names_both_methods():
    registry = FakeRegistry({"prune": fake("prune", before=("route",), origin="pruner"),
                             "route": fake("route", before=("prune",))})
    with pytest.raises(UserError) as err:
        pass_order(registry)
    text = str(err.value)
    assert "method passes cannot be ordered" in text
    assert "'prune' (pruner)" in text and "'route' (diffc)" in text


PRUNE_PLUGIN = '''
import attrs
from diffc.registry import annotation

@annotation("prune", targets={"block", "repeat"}, positional=("amount",))
class Prune:
    """Magnitude pruning (a test plug-in that registers an annotation but no method)."""
    amount: float = 0.5
'''


def test_an_annotation_no_method_implements_fails_check_at_its_line(tmp_path):
    (tmp_path / "prune_plugin.py").write_text(PRUNE_PLUGIN)
    info = tmp_path / "pruneplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pruneplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[diffc.blocks]\npruner = prune_plugin\n")
    spec = tmp_path / "pruned.diffspec"
    spec.write_text('import "dit.diffspec"\n\nmodel Pruned = DiT_tiny with {\n  @prune(0.3) blocks\n}\n')
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    run = subprocess.run([sys.executable, "-m", "diffc", "check", str(spec)], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert f"{spec}:4:3: error: @prune is registered by 'pruner' but no method implements it" in run.stderr
    assert "Traceback" not in run.stderr


def test_passes_record_their_facts_in_node_meta():
    compiled = compile_spec(ROOT / "specs/dit_dtr.diffspec", "DiT_tiny_DTR")
    routed = [n for n in compiled.graph.nodes.values() if "route" in n["ir"].meta]
    assert len(routed) == 4
    assert {n["ir"].meta["route_channels"] for n in routed} == {128}
    staged = compile_spec(ROOT / "specs/multistage_unet.diffspec", "MultistageDDPMpp_tiny")
    stages = {n["ir"].meta["stage"][1] for n in staged.graph.nodes.values() if "stage" in n["ir"].meta}
    assert stages == {0, 1, 2}


def test_stage_regions_must_share_one_split():
    text = ("model M() {\n  input x: sample[1, 4, 4]\n  input t: sigma\n  h = conv(x, out = 4)\n"
            "  @stage(boundaries = [logsnr(0.0)]) first {\n    h = conv(h, out = 4)\n  }\n"
            "  @stage(boundaries = [logsnr(1.0)]) second {\n    h = conv(h, out = 4)\n  }\n  return h\n}\n")
    from diffc.compiler import compile_program
    from diffc.compiler.program import load_text
    with pytest.raises(UserError) as err:
        compile_program(load_text(text, "two.diffspec"))
    assert "two.diffspec:8:3: error: all @stage regions of a model must use the same boundaries" in str(err.value)
