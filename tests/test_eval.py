"""Evaluation: built-in data, the digits extractor, torch-fidelity metrics, provenance and the CLI commands."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from diffc.cli import main
from diffc.errors import UserError
from diffc.evaluation import extractor as digits_extractor
from diffc.evaluation.data import ImageTensorDataset, digits_float, digits_uint8, reference_input
from diffc.evaluation.evaluate import evaluate_bundle
from diffc.evaluation.fidelity import fidelity_metrics, inception_weights, resolve_extractor
from diffc.interface import Condition, ModelInterface, NoiseInput
from diffc.sampling.generate import SamplerConfig


@pytest.fixture(scope="module", autouse=True)
def diffc_cache(tmp_path_factory):
    """One trained digits extractor for the whole module, in a private cache."""
    cache = tmp_path_factory.mktemp("diffc-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIFFC_CACHE", str(cache))
        digits_extractor.ensure_digits_extractor()
        yield cache


def test_builtin_digits_bilinear_upsampling():
    from sklearn.datasets import load_digits
    raw = torch.from_numpy(load_digits().images[0]) / 16.0
    up, labels = digits_float(16)
    assert up.shape == (1797, 1, 16, 16) and labels[:3].tolist() == [0, 1, 2]
    # align_corners=False, factor 2: out[1] = 0.75 in[0] + 0.25 in[1] in each direction
    hand = 0.5625 * raw[0, 0] + 0.1875 * raw[0, 1] + 0.1875 * raw[1, 0] + 0.0625 * raw[1, 1]
    assert up[0, 0, 1, 1].item() == pytest.approx(hand.item(), abs=1e-6)
    images = digits_uint8(8)
    assert images.dtype == torch.uint8 and images.shape == (1797, 3, 8, 8)
    assert torch.equal(images[0, 2], (raw * 255).round().to(torch.uint8))


def test_digits_extractor_is_reproducible_and_accurate(tmp_path, diffc_cache):
    cached = digits_extractor.default_weights_path()
    again = digits_extractor.ensure_digits_extractor(tmp_path / "again.pt")
    assert digits_extractor.file_sha256(again) == digits_extractor.file_sha256(cached)
    assert torch.load(cached, weights_only=True)["held_out_accuracy"] > 0.9


def metrics(a, b, **kwargs):
    return fidelity_metrics(a, b, resolve_extractor("digits", "builtin"), reference_count=len(b), progress=False,
                            **kwargs)


def test_fid_of_data_against_itself_is_zero_and_shifted_copy_is_larger():
    images = digits_uint8(16)[:600]
    same = metrics(ImageTensorDataset(images), ImageTensorDataset(images))
    assert abs(same["frechet_inception_distance"]) < 1e-3
    assert same["precision"] == same["recall"] == 1.0
    assert same["inception_score_mean"] > 8      # a 10-class classifier on real digits: IS close to 10
    other_half = metrics(ImageTensorDataset(images[:300]), ImageTensorDataset(images[300:]))
    shifted = metrics(ImageTensorDataset(torch.roll(images, 3, dims=3)), ImageTensorDataset(images))
    assert 1.0 < other_half["frechet_inception_distance"] < shifted["frechet_inception_distance"]
    assert shifted["precision"] < other_half["precision"]


def test_npz_and_folder_references_read_the_same_images(tmp_path):
    images = digits_uint8(16)[:40]
    np.savez(tmp_path / "ref.npz", arr_0=images.permute(0, 2, 3, 1).numpy())
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")
    from_npz, info = reference_input(str(tmp_path / "ref.npz"), 16)
    assert info["count"] == 40 and torch.equal(from_npz.images, images)
    from_folder, info = reference_input(str(folder), 16)
    assert info == {"kind": "folder", "path": str(folder.resolve()), "count": 40}
    assert abs(metrics(from_folder, ImageTensorDataset(images))["frechet_inception_distance"]) < 1e-3


def test_bad_references_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not builtin, builtin-train, builtin-all, an image folder or an existing .npz"):
        reference_input(str(tmp_path / "missing"), 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no .png/.jpg images"):
        reference_input(str(tmp_path / "empty"), 16)
    np.savez(tmp_path / "bad.npz", other=np.zeros(3))
    with pytest.raises(UserError, match="no 'arr_0' or 'images'"):
        reference_input(str(tmp_path / "bad.npz"), 16)


def test_inception_weights_absent_is_a_clear_error_not_a_download(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("network call attempted")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    expected = tmp_path / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    with pytest.raises(UserError) as err:
        resolve_extractor("auto", str(tmp_path))          # a non-builtin reference picks Inception
    assert str(expected) in err.value.render() and "--weights" in err.value.render()
    with pytest.raises(UserError, match="Inception weights file not found"):
        inception_weights(tmp_path / "fake.pth")
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"not really weights")
    assert inception_weights() == expected


# ---- a model evaluated end to end: EDM oracle denoiser of the digits (its samples are training images) ----

class DigitsOracle(torch.nn.Module):
    """D(x; sigma) = posterior mean over the 1797 digits (exact for the empirical data); scale 0 gives D = 0."""

    def __init__(self, scale=1.0):
        super().__init__()
        self.data = digits_float(16)[0].flatten(1) * 2 - 1
        self.scale = scale
        self.interface = ModelInterface((1, 16, 16), 1, NoiseInput("sigma", "sigma"),
                                        (Condition("label", "label", (10,)),))

    def forward(self, x, sigma, cond):
        d2 = torch.cdist(x.flatten(1).double(), self.data.double()) ** 2
        weights = torch.softmax(-d2 / (2 * sigma.double()[:, None] ** 2), dim=1)
        return (self.scale * weights @ self.data.double()).float().view_as(x), {}


class EDMToyObjective:
    family = "edm"

    def denoise(self, module, x, sigma, cond):
        return module(x, sigma, cond)[0]


class Bundle:
    def __init__(self, scale=1.0):
        self.module = DigitsOracle(scale)
        self.interface = self.module.interface
        self.objective = EDMToyObjective()
        self.info = {"nimg": 1234, "ema": "0.100", "spec_hash": "abc", "path": "/x/run"}


def test_evaluate_bundle_oracle_beats_blank_and_records_provenance():
    config = SamplerConfig(steps=8)
    oracle = evaluate_bundle(Bundle(), num_samples=48, config=config, seed=3, batch_size=48, progress=False)
    batched = evaluate_bundle(Bundle(), num_samples=48, config=config, seed=3, batch_size=10, progress=False)
    blank = evaluate_bundle(Bundle(scale=0.0), num_samples=48, config=config, seed=3, progress=False)
    # per-sample seeds: the batch size does not matter (the extractor's float32 batching leaves ~1e-9 relative)
    assert oracle["metrics"] == pytest.approx(batched["metrics"], rel=1e-6)
    assert oracle["metrics"]["fd_digits_cnn"] < blank["metrics"]["fd_digits_cnn"] / 5
    assert oracle["metrics"]["precision"] > 0.8
    p = oracle["provenance"]
    assert p["num_samples"] == 48 and p["seeds"] == [3, 50] and p["ema"] == "0.100"
    assert p["sampler"]["sampler"] == "heun" and p["sampler"]["steps"] == 8
    assert p["extractor"]["name"] == "diffc-digits-cnn"
    assert p["extractor"]["weights_sha256"] == digits_extractor.file_sha256(digits_extractor.default_weights_path())
    assert p["reference"] == {"kind": "builtin-digits", "split": "held-out", "count": 297, "resolution": 16,
                              "upsampling": "bilinear"}
    assert p["checkpoint"]["nimg"] == 1234


# ---- command line ----

def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out + captured.err


def test_cli_bad_checkpoint_and_bad_flags_exit_2_without_traceback(tmp_path, capsys):
    code, text = run_cli(["eval", str(tmp_path / "nope.pt")], capsys)
    assert code == 2 and "checkpoint not found" in text and "Traceback" not in text
    code, text = run_cli(["sample", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "checkpoint not found" in text and "Traceback" not in text
    code, text = run_cli(["sample", str(tmp_path), "--out", str(tmp_path / "o"), "--sampler", "bogus"], capsys)
    assert code == 2 and "bogus" in text and "Traceback" not in text
    code, text = run_cli(["eval", str(tmp_path), "--n", "2"], capsys)
    assert code == 2 and "Traceback" not in text


@pytest.fixture
def toy_checkpoint(tmp_path, monkeypatch):
    """`load_bundle` answers with the oracle bundle, as load_for_inference would for a real checkpoint."""
    calls = []

    def fake_load(path, ema=None, device="cpu", vae=None):
        calls.append((str(path), ema))
        return Bundle()
    monkeypatch.setattr("diffc.sampling.generate.load_bundle", fake_load)
    monkeypatch.setattr("diffc.evaluation.evaluate.load_bundle", fake_load)
    checkpoint = tmp_path / "run" / "ckpt.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    return checkpoint, calls


def test_cli_sample_writes_pngs_grid_npz_and_provenance(toy_checkpoint, tmp_path, capsys):
    checkpoint, calls = toy_checkpoint
    out = tmp_path / "samples"
    code, text = run_cli(["sample", str(checkpoint), "--n", "5", "--out", str(out), "--steps", "6", "--ema", "0.100",
                          "--batch", "2", "--seed", "10"], capsys)
    assert code == 0, text
    assert calls == [(str(checkpoint), "0.100")]
    assert sorted(p.name for p in out.glob("0*.png")) == [f"{s:06d}.png" for s in range(10, 15)]
    with np.load(out / "samples.npz") as data:
        assert data["arr_0"].shape == (5, 16, 16, 1) and data["seeds"].tolist() == list(range(10, 15))
        assert np.array_equal(np.asarray(Image.open(out / "000012.png")), data["arr_0"][2, ..., 0])
    assert Image.open(out / "grid.png").size == (3 * 18 + 2, 2 * 18 + 2)
    provenance = json.loads((out / "samples.json").read_text())
    assert provenance["sampler"]["steps"] == 6 and provenance["seeds"] == [10, 14]


def test_cli_eval_writes_json_next_to_checkpoint(toy_checkpoint, capsys):
    checkpoint, _ = toy_checkpoint
    code, text = run_cli(["eval", str(checkpoint), "--n", "12", "--steps", "4", "--ema", "0.100"], capsys)
    assert code == 0, text
    result_path = checkpoint.parent / "ckpt.eval-0.100-diffc-digits-cnn-n12.json"
    result = json.loads(result_path.read_text())
    assert set(result["metrics"]) == {"fd_digits_cnn", "kd_digits_cnn_x1e3", "kd_digits_cnn_x1e3_std", "precision",
                                      "recall", "f_score", "is_digits_cnn_mean", "is_digits_cnn_std"}
    assert result["provenance"]["ema"] == "0.100" and result["provenance"]["num_samples"] == 12
    assert result["metric_labels"]["fd_digits_cnn"] == \
        "FD (digits-CNN features) vs built-in digits, held-out split (297 images)"
    assert "KD x10^3 (digits-CNN features)" in result["metric_labels"]["kd_digits_cnn_x1e3"]
    assert "FD (digits-CNN features)" in text and "Inception" not in text and str(result_path) in text
