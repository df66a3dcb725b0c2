"""The latent workflow end to end through the CLI on a tiny random AutoencoderKL (examples/latent_training):
encode -> decode -> train -> sample -> eval; and the latent data path's numbers (posterior draw, flipped copies,
convention) by hand."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from latent_helpers import EXAMPLE, make_image_folder, make_tiny_vae
from PIL import Image

from diffc.autoencoder import Autoencoder, LatentDecoder, sd_convention
from diffc.encoding import EncodeOptions, encode_folder
from diffc.errors import UserError
from diffc.training.data import build_dataset, load_batch
from diffc.training.recipe import AutoencoderConfig, DataConfig
from diffc.training.recipe_loader import parse_recipe


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent-run")
    make_tiny_vae(root / "vae")
    make_image_folder(root / "images")
    return root


def test_example_encode_train_sample_decode_eval_through_the_cli(tmp_path):
    """examples/latent_training as its README runs it (a short training), from a copy of the folder."""
    root = tmp_path / "example"
    shutil.copytree(EXAMPLE, root)
    proc = subprocess.run([sys.executable, "make_toy_data.py", "--per-class", "4"], cwd=root, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    code, _, err = run_cli(["encode", "images", "--vae", "vae", "-o", "latents.npz", "--resolution", 16, "--flip",
                            "--no-progress"], cwd=root)
    assert code == 0, err
    code, out, err = run_cli(["decode", "latents.npz", "--vae", "vae", "-o", "recon", "--n", 5], cwd=root)
    assert code == 0, err
    assert sorted(p.name for p in (root / "recon").iterdir())[-1] == "000004.png"
    assert Image.open(root / "recon" / "000000.png").size == (16, 16)

    short = ["duration=3 steps", "checkpoint.every=3 steps", "sample.first=3 steps", "sample.n=4", "sample.steps=4",
             "log.every=1 steps", "batch=8"]
    code, out, err = run_cli(["train", "tiny_latent_dit.diffspec", "--run-dir", "run", "--no-progress", *short],
                             cwd=root)
    assert code == 0, err
    assert "trained to 24 images" in out
    grid = Image.open(next((root / "run" / "samples").glob("samples-*.png")))
    assert grid.mode == "RGB" and grid.width >= 2 * 16                      # decoded 16x16 RGB, not 4x4 latents
    state = torch.load(next((root / "run").glob("training-state-*.pt")), weights_only=True)
    assert state["autoencoder"]["source"] == str((root / "vae").resolve())
    assert state["autoencoder"]["convention"]["scale"] == pytest.approx([0.18215] * 4)

    code, out, err = run_cli(["sample", "run", "--n", 4, "--steps", 4, "--out", "samples"], cwd=root)
    assert code == 0, err
    first = Image.open(root / "samples" / "000000.png")
    assert first.size == (16, 16) and first.mode == "RGB"
    provenance = json.loads((root / "samples" / "samples.json").read_text())
    assert provenance["autoencoder"]["vae"]["downsample"] == 4

    code, out, err = run_cli(["eval", "run", "--ref", "recon", "--n", 8, "--steps", 4, "--extractor", "digits",
                              "--out", "eval.json"], cwd=root)
    assert code == 0, err
    result = json.loads((root / "eval.json").read_text())
    assert np.isfinite(result["metrics"]["fd_digits_cnn"])                  # FD of digits-CNN features
    assert result["provenance"]["autoencoder"]["convention"]["name"] == "sd"

    code, _, err = run_cli(["sample", "run", "--n", 1, "--out", "s2", "--vae", "missing-vae"], cwd=root)
    assert code == 2 and "autoencoder folder not found: missing-vae" in err


def test_latent_batches_draw_the_posterior_pick_flips_and_scale_by_hand(workdir, tmp_path):
    auto = Autoencoder.load(workdir / "vae")
    encode_folder(workdir / "images", tmp_path / "l.npz", auto, EncodeOptions("sd", 16, flip=True), progress=False)
    cfg = DataConfig(name="latents", path=str(tmp_path / "l.npz"), hflip=0.5)
    interface = type("I", (), {"sample_shape": (4, 4, 4)})()
    dataset = build_dataset(cfg, interface, tmp_path)
    index = torch.tensor([0, 3, 5, 6, 7, 1])
    batch = load_batch(dataset, cfg, index, (4, 4), torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    for _ in range(3):                                                    # crop scale, top, left
        torch.rand(6, generator=generator)
    flip = torch.rand(6, generator=generator) < 0.5
    stored = np.load(tmp_path / "l.npz")
    raw = torch.from_numpy(np.where(flip.numpy()[:, None, None, None], stored["latents_flipped"][index],
                                    stored["latents"][index]))
    mean, std = raw[:, :4], raw[:, 4:]
    expected = (mean + std * torch.randn(mean.shape, generator=generator)) * 0.18215
    assert flip.any() and not flip.all()
    assert torch.allclose(batch.images, expected, atol=1e-7)
    assert torch.equal(batch.control[:, -1], flip.float())
    assert batch.labels.tolist() == stored["labels"][index].tolist()


def test_latent_data_mismatches_are_clear_errors(workdir, tmp_path):
    auto = Autoencoder.load(workdir / "vae")
    encode_folder(workdir / "images", tmp_path / "l.npz", auto, EncodeOptions("edm2", 16, raw_stats="measured"),
                  progress=False)
    shape = type("I", (), {"sample_shape": (4, 8, 8)})()
    with pytest.raises(UserError, match="latents are 4x4x4 but the model's samples are 4x8x8"):
        build_dataset(DataConfig(name="latents", path="l.npz"), shape, tmp_path)
    shape.sample_shape = (4, 4, 4)
    with pytest.raises(UserError, match="no flipped copies"):
        build_dataset(DataConfig(name="latents", path="l.npz", hflip=0.5), shape, tmp_path)
    with pytest.raises(UserError, match="carries its own"):
        build_dataset(DataConfig(name="latents", path="l.npz", latent_scale=0.18215), shape, tmp_path)
    from diffc.training.latents import open_decoder
    dataset = build_dataset(DataConfig(name="latents", path="l.npz"), shape, tmp_path)
    with pytest.raises(UserError, match="encoded with the edm2 convention"):
        open_decoder(AutoencoderConfig(path=str(workdir / "vae"), convention="sd"), dataset, tmp_path, "r.yaml", "cpu")
    decoder = open_decoder(AutoencoderConfig(path=str(workdir / "vae")), dataset, tmp_path, "r.yaml", "cpu")
    assert decoder.convention == dataset.convention and decoder.convention.name == "edm2"


def test_recipe_autoencoder_errors_are_located(workdir, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {name: latents, path: l.npz}\nautoencoder: {path: nowhere}\n")
    with pytest.raises(UserError) as err:
        parse_recipe(recipe.read_text(), str(recipe), base_dir=tmp_path)
    diag = next(d for d in err.value.diagnostics if "autoencoder folder not found" in d.message)
    assert (diag.line, diag.col) == (2, 21)
    recipe.write_text("data: {name: digits}\nautoencoder: {path: %s, convention: edm3}\n" % (workdir / "vae"))
    with pytest.raises(UserError) as err:
        parse_recipe(recipe.read_text(), str(recipe), base_dir=tmp_path)
    messages = [d.message for d in err.value.diagnostics]
    assert any("unknown convention 'edm3'" in m for m in messages)
    recipe.write_text("data: {name: digits}\nautoencoder: {path: %s}\n" % (workdir / "vae"))
    with pytest.raises(UserError, match="an autoencoder needs latent data"):
        parse_recipe(recipe.read_text(), str(recipe), base_dir=tmp_path)


def test_sampled_pixels_are_the_decoded_samples(workdir):
    from diffc.interface import ModelInterface, NoiseInput
    from diffc.sampling.generate import SamplerConfig, sample_images, sample_pixels

    class Shrink(torch.nn.Module):
        interface = ModelInterface((4, 4, 4), 4, NoiseInput("t", "time"), ())

        def forward(self, x, t, cond):
            return -x, {}

    class Bundle:
        module = Shrink()
        interface = module.interface
        objective = type("O", (), {"family": "flow", "velocity": staticmethod(lambda m, x, t, c: m(x, t, c)[0])})()
        decoder = LatentDecoder(Autoencoder.load(workdir / "vae"), sd_convention(4))

    config = SamplerConfig(steps=2)
    latents = sample_images(Bundle, range(3), config)
    pixels = sample_pixels(Bundle, range(3), config)
    assert latents.shape == (3, 4, 4, 4) and pixels.shape == (3, 3, 16, 16)
    assert torch.equal(pixels, Bundle.decoder.decode(latents))
