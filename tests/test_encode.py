"""`diffc encode`: images -> a latent file with its convention, DiT's center crop, flips, resumable shards."""
import json

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from latent_helpers import make_image_folder, make_tiny_vae
from PIL import Image

from diffc.autoencoder import Autoencoder, edm2_convention
from diffc.encoding import EncodeOptions, center_crop, encode_folder, load_pixels
from diffc.errors import UserError
from diffc.latent_file import raw_statistics, read_latent_file


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("encode")
    return make_tiny_vae(root / "vae"), make_image_folder(root / "images")


def test_center_crop_follows_dit_adm():
    image = Image.fromarray(np.arange(64 * 40 * 3, dtype=np.uint8).reshape(40, 64, 3) % 251)
    crop = center_crop(image, 16)
    halved = image.resize((32, 20), Image.BOX)                       # short side 40 >= 2*16: one box halving
    resized = halved.resize((round(32 * 16 / 20), 16), Image.BICUBIC)  # short side to 16
    left = (resized.width - 16) // 2
    assert np.array_equal(np.asarray(crop), np.asarray(resized)[:, left:left + 16])


def test_encode_cli_stores_latents_labels_flips_and_metadata(setup, tmp_path):
    vae_dir, images = setup
    out = tmp_path / "latents.npz"
    code, stdout, err = run_cli(["encode", images, "--vae", vae_dir, "-o", out, "--resolution", 16, "--flip",
                                 "--no-progress"])
    assert code == 0, err
    assert "wrote 8 latents (4x4x4, sd convention, posterior dist, with flipped copies)" in stdout
    data = read_latent_file(out)
    assert data.latents.shape == (8, 8, 4, 4) and data.flipped.shape == (8, 8, 4, 4)
    assert data.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert data.meta["class_names"] == ["digit0", "digit1"] and data.meta["posterior"] == "dist"
    assert data.convention.scale == pytest.approx([0.18215] * 4) and data.convention.bias == (0.0,) * 4
    auto = Autoencoder.load(vae_dir)
    assert data.meta["vae"]["sha256"] == auto.identity["sha256"]
    pixels = torch.from_numpy(load_pixels(images / "digit1" / "0.png", 16, 3).copy()).float()[None] / 127.5 - 1
    mean, std = auto.encode(pixels, "sd")
    assert np.allclose(data.latents[4, :4], mean[0].numpy(), atol=1e-6)          # posterior mean, then std
    assert np.allclose(data.latents[4, 4:], std[0].numpy(), atol=1e-6)
    flipped_mean, _ = auto.encode(pixels.flip(-1), "sd")
    assert np.allclose(data.flipped[4, :4], flipped_mean[0].numpy(), atol=1e-6)
    assert not (tmp_path / "latents.npz.parts").exists()
    code, _, err = run_cli(["encode", images, "--vae", vae_dir, "-o", out, "--resolution", 16])
    assert code == 2 and "already exists" in err and "--overwrite" in err


def test_edm2_measured_statistics_whiten_the_stored_latents(setup, tmp_path):
    vae_dir, images = setup
    auto = Autoencoder.load(vae_dir)
    meta = encode_folder(images, tmp_path / "edm2.npz", auto, EncodeOptions("edm2", 16, raw_stats="measured"),
                         progress=False)
    data = read_latent_file(tmp_path / "edm2.npz")
    mean, std = np.split(data.latents.astype(np.float64), 2, axis=1)
    mu = mean.mean(axis=(0, 2, 3))
    sigma = np.sqrt((mean ** 2 + std ** 2).mean(axis=(0, 2, 3)) - mu ** 2)   # of mean + randn * std, by hand
    expected = edm2_convention(mu.tolist(), sigma.tolist())
    assert meta["convention"]["raw_mean"] == pytest.approx(mu.tolist(), rel=1e-9)
    assert data.convention.scale == pytest.approx(expected.scale) and data.convention.bias == pytest.approx(expected.bias)
    assert raw_statistics([(data.latents, True)])[1] == pytest.approx(sigma.tolist(), rel=1e-9)


def test_interrupted_encode_resumes_after_its_last_complete_shard(setup, tmp_path):
    vae_dir, images = setup
    auto = Autoencoder.load(vae_dir)
    options = EncodeOptions("sd", 16, posterior="sample", shard=3)
    encode_folder(images, tmp_path / "whole.npz", auto, options, progress=False)
    broken = tmp_path / "images"
    for sub in ("digit0", "digit1"):
        (broken / sub).mkdir(parents=True)
        for f in (images / sub).iterdir():
            (broken / sub / f.name).write_bytes(f.read_bytes())
    (broken / "digit1" / "2.png").write_bytes(b"not a png")                # in the third shard (images 6..7)
    with pytest.raises(UserError) as err:
        encode_folder(broken, tmp_path / "resumed.npz", auto, options, progress=False)
    assert err.value.diagnostics[0].file.endswith("digit1/2.png")
    parts = tmp_path / "resumed.npz.parts"
    kept = {p.name: p.stat().st_mtime_ns for p in parts.glob("shard-*.npz")}
    assert sorted(kept) == ["shard-000000.npz", "shard-000001.npz"] and not (tmp_path / "resumed.npz").exists()
    (broken / "digit1" / "2.png").write_bytes((images / "digit1" / "2.png").read_bytes())
    with pytest.raises(UserError, match="other settings"):
        encode_folder(broken, tmp_path / "resumed.npz", auto, EncodeOptions("sd", 16, shard=3), progress=False)
    encode_folder(broken, tmp_path / "resumed.npz", auto, options, progress=False)
    assert not parts.exists()
    whole, resumed = read_latent_file(tmp_path / "whole.npz"), read_latent_file(tmp_path / "resumed.npz")
    assert np.array_equal(whole.latents, resumed.latents)                 # same draws: seeded per shard
    assert json.dumps(whole.meta["convention"]) == json.dumps(resumed.meta["convention"])


def test_bad_image_exits_2_naming_it(setup, tmp_path):
    vae_dir, _ = setup
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "imgs" / "good.png")
    (tmp_path / "imgs" / "bad.jpg").write_text("<html>not an image</html>")
    code, _, err = run_cli(["encode", tmp_path / "imgs", "--vae", vae_dir, "-o", tmp_path / "l.npz",
                            "--resolution", 16, "--no-progress"])
    assert code == 2 and "bad.jpg" in err and "cannot read image" in err and "Traceback" not in err
    assert not (tmp_path / "l.npz").exists()
    with pytest.raises(UserError, match="not a multiple of the autoencoder's downsampling 4"):
        encode_folder(tmp_path / "imgs", tmp_path / "l.npz", Autoencoder.load(vae_dir), EncodeOptions("sd", 10))
