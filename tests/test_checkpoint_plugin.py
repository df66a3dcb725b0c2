"""The fifth method, written only against the extension API: examples/diffc-checkpoint, pip-installed into a
temporary folder. It shows up in `diffc blocks`, `compile` and `graph`, keeps `check` torch-free, and gives the
plain model's outputs and gradients while keeping far fewer activation bytes for backward."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from cli_helpers import ROOT

SPEC = 'import "dit.diffspec"\n\nmodel Checkpointed = DiT_tiny with {\n  @checkpoint blocks\n}\n'
COMPARE = """
import json, sys, torch
from diffc.compiler import build_model_from_text
from diffc_checkpoint.memory import kept_for_backward
text = open(sys.argv[1]).read()
def build(extra):
    torch.manual_seed(0)
    return build_model_from_text(text + extra, sys.argv[1], "M")
plain = build("model M = DiT_tiny\\n")
ckpt = build("model M = DiT_tiny with {\\n  @checkpoint blocks\\n}\\n")
ckpt.module.load_state_dict(plain.module.state_dict())
gen = torch.Generator().manual_seed(1)
x, t, y = torch.randn(4, 1, 16, 16, generator=gen), torch.tensor([0., 100., 500., 999.]), torch.tensor([0, 3, 7, 10])
runs = {}
for name, built in (("plain", plain), ("ckpt", ckpt)):
    nbytes, (pred, aux) = kept_for_backward(built, lambda: built.module(x, t, {"y": y}))
    pred.square().mean().backward()
    runs[name] = (nbytes, pred.detach(), {k: p.grad for k, p in built.module.named_parameters() if p.grad is not None})
(pb, pp, pg), (cb, cp, cg) = runs["plain"], runs["ckpt"]
print(json.dumps({"plain_bytes": pb, "ckpt_bytes": cb, "pred_diff": float((pp - cp).abs().max()),
                  "grad_diff": max(float((pg[k] - cg[k]).abs().max()) for k in pg), "grads": [len(pg), len(cg)],
                  "wrapped": ckpt.module.forward_source.count("activation_checkpoint(")}))
"""


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """pip-install a copy of examples/diffc-checkpoint (the source tree stays clean) into a temporary target."""
    work = tmp_path_factory.mktemp("plugin")
    source = work / "src"
    shutil.copytree(ROOT / "examples" / "diffc-checkpoint", source)
    target = work / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--no-index", "--target", str(target), str(source)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    assert (target / "diffc_checkpoint").is_dir()
    (work / "dit.diffspec").write_text((ROOT / "specs" / "dit.diffspec").read_text())
    (work / "ckpt.diffspec").write_text(SPEC)
    env = dict(os.environ, PYTHONPATH=f"{target}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return work, env


def run(env, *args, code=None):
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "diffc", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


def test_blocks_lists_the_annotation_and_the_method(plugin):
    _, env = plugin
    listing = run(env, "blocks", "--search", "checkpoint")
    assert listing.returncode == 0, listing.stderr
    assert "@checkpoint()  [annotation on: block, region, repeat]  (from checkpoint)" in listing.stdout
    assert "checkpoint: implements @checkpoint  (from checkpoint)" in listing.stdout


def test_check_stays_torch_free_and_compile_reports_the_wrapped_calls(plugin):
    work, env = plugin
    code = ("import sys\nfrom diffc.cli import main\ntry:\n    main(['check', %r])\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\nassert 'torch' not in sys.modules, 'torch was imported'\n"
            % str(work / "ckpt.diffspec"))
    check = run(env, code=code)
    assert check.returncode == 0, check.stderr
    summary = run(env, "compile", str(work / "ckpt.diffspec"))
    assert summary.returncode == 0, summary.stderr
    assert "@checkpoint: 4 block calls recompute their activations in backward" in summary.stdout


def test_graph_colours_the_checkpointed_blocks(plugin):
    work, env = plugin
    drawn = run(env, "graph", str(work / "ckpt.diffspec"), "--format", "mermaid")
    assert drawn.returncode == 0, drawn.stderr
    assert "@checkpoint" in drawn.stdout and "fill:#dcd6f7" in drawn.stdout


def test_outputs_and_gradients_equal_the_plain_model_with_far_less_kept(plugin):
    work, env = plugin
    result = run(env, str(work / "dit.diffspec"), code=COMPARE)
    assert result.returncode == 0, result.stderr
    numbers = json.loads(result.stdout)
    assert numbers["wrapped"] == 4
    assert numbers["grads"][0] == numbers["grads"][1] > 40
    assert numbers["pred_diff"] <= 1e-6 and numbers["grad_diff"] <= 1e-6
    assert numbers["ckpt_bytes"] < 0.25 * numbers["plain_bytes"], numbers
