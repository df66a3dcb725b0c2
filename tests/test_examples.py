"""Each folder under examples/ runs as its README says (short runs; the latent example is in
test_latent_workflow.py)."""
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib

import torch
from cli_helpers import ROOT, run_cli
from latent_helpers import make_image_folder

EXAMPLES = ROOT / "examples"


def test_index_lists_every_example_folder():
    index = (EXAMPLES / "README.md").read_text()
    for folder in (p for p in EXAMPLES.iterdir() if p.is_dir()):
        assert f"`{folder.name}/`" in index, folder.name


def test_image_folder_example_trains_samples_and_resumes(tmp_path):
    root = tmp_path / "image_folder"
    shutil.copytree(EXAMPLES / "image_folder", root)
    make_image_folder(root / "images")
    short = ["duration=2 steps", "batch=4", "checkpoint.every=2 steps", "sample.n=4", "sample.steps=2",
             "log.every=1 steps", "log.tensorboard=false"]
    code, out, err = run_cli(["train", "tiny_dit.diffspec", "--no-progress", *short], cwd=root)
    assert code == 0, err
    run = root / "runs" / "tiny_dit-DiT_folder_tiny"
    assert "trained to 8 images" in out and list((run / "samples").glob("samples-*.png"))
    code, out, err = run_cli(["sample", run, "--n", 2, "--steps", 2, "--out", root / "samples"], cwd=root)
    assert code == 0, err
    assert (root / "samples" / "000001.png").is_file()


def _install_like_pip(example, site):
    """What `pip install -e examples/custom_block` leaves for importlib.metadata: a dist-info whose entry points are
    the ones the example's pyproject.toml declares (read from it, not restated)."""
    project = tomllib.loads((example / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = [f"{name} = {target}" for name, target in project["entry-points"]["diffc.blocks"].items()]
    (info / "entry_points.txt").write_text("[diffc.blocks]\n" + "\n".join(lines) + "\n")
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(example), str(site), os.environ.get("PYTHONPATH", "")]))


def test_custom_block_plugin_registers_checks_and_computes_squeeze_excite(tmp_path):
    example = EXAMPLES / "custom_block"
    env = _install_like_pip(example, tmp_path / "site")
    run = lambda args, **kw: subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,  # noqa
                                            text=True, **kw)
    listing = run(["-m", "diffc", "blocks", "--search", "squeeze"])
    assert listing.returncode == 0, listing.stderr
    assert "squeeze_excite(x, reduction: int = 4) -> out  (from example)" in listing.stdout
    bad = tmp_path / "bad.diffspec"
    bad.write_text((example / "se_denoiser.diffspec").read_text().replace("reduction = 4", "reduction = 64"))
    checked = run(["-m", "diffc", "check", str(bad)])
    assert checked.returncode == 2
    assert re.search(r"bad\.diffspec:8:26: error: shape mismatch in 'gated' \(squeeze_excite\): "
                     r"reduction 64 is larger than the 32 channels", checked.stderr)
    code = textwrap.dedent(f"""
        import torch
        from diffc.compiler import build_model
        module = build_model({str(example / "se_denoiser.diffspec")!r}).module
        x = torch.randn(2, 3, 16, 16)
        features = module.features(x)
        se = module.gated
        by_hand = features * torch.sigmoid(se.excite.weight @ torch.relu(se.squeeze.weight @ features.mean((2, 3)).T
                                            + se.squeeze.bias[:, None]) + se.excite.bias[:, None]).T[:, :, None, None]
        assert torch.allclose(se(features), by_hand, atol=1e-6)
        assert torch.allclose(module(x, torch.zeros(2), {{}})[0], module.out(by_hand), atol=1e-6)
        print("ok")
    """)
    computed = run(["-c", code])
    assert computed.stdout.strip() == "ok", computed.stderr


def test_own_training_loop_trains_and_its_weights_load_back(tmp_path):
    out = tmp_path / "my_model.pt"
    proc = subprocess.run([sys.executable, str(EXAMPLES / "own_training_loop" / "train.py"), "--steps", "10",
                           "--batch", "16", "--out", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    losses = [float(v) for v in re.findall(r"loss (\S+)", proc.stdout)]
    assert len(losses) == 2 and losses[-1] < losses[0]                   # step 0 and the last step
    from diffc.compiler import build_model
    module = build_model(ROOT / "specs" / "dit_dtr.diffspec", model="DiT_tiny_DTR").module
    module.load_state_dict(torch.load(out, weights_only=True))
