"""Data sources, augmentation metadata, conditioning dropout and noisy replicate padding."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from train_toy import toy_interface  # noqa: E402

from diffc.errors import UserError
from diffc.interface import Condition, ModelInterface, NoiseInput
from diffc.blocks.nn.conditioning import noisy_replicate_pad
from diffc.training.conditioning import build_cond, check_conditions
from diffc.interface import CONTROL_FIELDS
from diffc.training.data import build_dataset, load_batch, sample_indices
from diffc.training.recipe import ConditioningConfig, DataConfig


def test_digits_are_scaled_and_upsampled():
    data = build_dataset(DataConfig(), toy_interface(), Path("."))
    assert len(data) == 1500 and data.images.min() == -1 and data.images.max() == 1   # eval's 297 held out
    everything = build_dataset(DataConfig(split="all"), toy_interface(), Path("."))
    assert len(everything) == 1797 and torch.equal(everything.images[:1500], data.images)
    batch = load_batch(data, DataConfig(), torch.arange(4), (16, 16), torch.Generator())
    assert batch.images.shape == (4, 1, 16, 16) and batch.labels.tolist() == [0, 1, 2, 3]
    assert torch.allclose(batch.control[0], torch.tensor([0.5, 0.5, 0, 0, 1, 1, 0]))


def test_sample_order_is_a_function_of_position():
    a = sample_indices(3, 0, 250, 100)
    assert sorted(a[:100].tolist()) == list(range(100)) and not torch.equal(a[:100], a[100:200])
    assert torch.equal(sample_indices(3, 137, 50, 100), a[137:187])


def test_augmentations_record_flip_and_crop():
    data = build_dataset(DataConfig(), toy_interface(), Path("."))
    cfg = DataConfig(hflip=1.0, crop_scale=0.5)
    batch = load_batch(data, cfg, torch.arange(8), (16, 16), torch.Generator().manual_seed(0))
    flip, side = batch.control[:, CONTROL_FIELDS.index("flip")], batch.control[:, CONTROL_FIELDS.index("crop_h")]
    assert (flip == 1).all() and (side >= 0.5 ** 0.5 - 1e-6).all() and (side <= 1).all()
    plain = load_batch(data, DataConfig(hflip=1.0), torch.arange(1), (16, 16), torch.Generator())
    unflipped = load_batch(data, DataConfig(), torch.arange(1), (16, 16), torch.Generator())
    assert torch.equal(plain.images, unflipped.images.flip(-1))


def test_image_folder_and_bad_file(tmp_path):
    for k, name in enumerate(["cat", "dog"]):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((20, 24), 40 * k, np.uint8)).save(tmp_path / name / "a.png")
    data = build_dataset(DataConfig(name="folder", path=str(tmp_path)), toy_interface(), Path("."))
    batch = load_batch(data, DataConfig(name="folder"), torch.tensor([1, 0]), (16, 16), torch.Generator())
    assert batch.labels.tolist() == [1, 0] and batch.images.shape == (2, 1, 16, 16)
    assert torch.allclose(batch.images[1], torch.full((1, 16, 16), -1.0))
    (tmp_path / "dog" / "b.png").write_bytes(b"not a png")
    data = build_dataset(DataConfig(name="folder", path=str(tmp_path)), toy_interface(), Path("."))
    with pytest.raises(UserError) as err:
        load_batch(data, DataConfig(name="folder"), torch.tensor([2]), (16, 16), torch.Generator())
    assert err.value.diagnostics[0].file.endswith("dog/b.png")


def test_npz_arrays_latents_and_errors(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((5, 16, 16, 1), np.uint8), labels=np.arange(5))
    data = build_dataset(DataConfig(name="npz", path="d.npz"), toy_interface(), tmp_path)
    assert data.images.shape == (5, 1, 16, 16) and float(data.images.max()) == -1.0
    np.save(tmp_path / "z.npy", np.ones((3, 1, 4, 4), np.float32))
    lat = build_dataset(DataConfig(name="latents", path="z.npy", latent_scale=0.5), toy_interface(), tmp_path)
    assert float(lat.images.max()) == 0.5
    np.savez(tmp_path / "bad.npz", pixels=np.zeros((2, 2)))
    with pytest.raises(UserError, match=r"no 'images'.*found \['pixels'\]"):
        build_dataset(DataConfig(name="npz", path="bad.npz"), toy_interface(), tmp_path)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(UserError) as err:
        build_dataset(DataConfig(name="npz", path="junk.npz"), toy_interface(), tmp_path)
    assert err.value.diagnostics[0].file.endswith("junk.npz")


def test_noisy_replicate_padding():
    tokens = torch.arange(12.0).view(1, 4, 3).repeat(2, 1, 1)
    out = noisy_replicate_pad(tokens, torch.tensor([2, 4]), 0.0, torch.Generator())
    assert torch.equal(out[0], torch.stack([tokens[0, 0], tokens[0, 1], tokens[0, 0], tokens[0, 1]]))
    assert torch.equal(out[1], tokens[1])
    noisy = noisy_replicate_pad(tokens, torch.tensor([2, 4]), 0.1, torch.Generator())
    assert torch.equal(noisy[0, :2], tokens[0, :2]) and not torch.equal(noisy[0, 2:], out[0, 2:])


def test_conditions_drop_independently():
    interface = ModelInterface((1, 16, 16), 1, NoiseInput("t", "timestep", 1000),
                               (Condition("y", "label", (10,), 0.5), Condition("c", "control", (7,), 0.5)))
    data = build_dataset(DataConfig(), interface, Path("."))
    check_conditions(interface, data)
    batch = load_batch(data, DataConfig(), torch.arange(2000) % len(data), (16, 16), torch.Generator())
    cond = build_cond(interface, ConditioningConfig(), batch, torch.Generator().manual_seed(0), "cpu")
    label_drop = cond["y"] == 10
    control_drop = cond["c"].isnan().all(1)
    assert 0.45 < label_drop.float().mean() < 0.55 and 0.45 < control_drop.float().mean() < 0.55
    both = (label_drop & control_drop).float().mean()
    assert abs(both - 0.25) < 0.04                               # independent draws
    none = build_cond(interface, ConditioningConfig(label_dropout=0.0, control_dropout=0.0), batch,
                      torch.Generator(), "cpu")
    assert (none["y"] < 10).all() and not none["c"].isnan().any()
    bad = ModelInterface((1, 16, 16), 1, NoiseInput("t", "timestep", 1000), (Condition("c", "control", (3,)),))
    with pytest.raises(UserError, match="records 7"):
        check_conditions(bad, data)
