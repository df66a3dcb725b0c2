"""Data checked before training (issue 10 item 5): the dry run and the start of training scan every item and list
each bad one with its path (bounded), and `diffc eval --ref` reports a damaged reference image the same way."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffc.cli import main
from diffc.datacheck import MAX_LISTED
from diffc.errors import UserError
from diffc.evaluation.data import reference_input
from diffc.interface import Condition, ModelInterface, NoiseInput
from diffc.training.data import build_dataset, scan_dataset
from diffc.training.recipe import DataConfig

SPEC = Path(__file__).resolve().parents[1] / "specs" / "dit_dtr.diffspec"
INTERFACE = ModelInterface((1, 16, 16), 1, NoiseInput("t", "timestep", 1000), (Condition("y", "label", (10,), 0.1),))


def scan(cfg, base):
    with pytest.raises(UserError) as err:
        scan_dataset(build_dataset(cfg, INTERFACE, base), INTERFACE)
    return err.value.diagnostics


def png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (16, 16), value).save(path)


def test_image_folder_lists_every_bad_item(tmp_path):
    for k in range(3):
        png(tmp_path / "imgs" / "a" / f"{k}.png", 40 * k)
    good = (tmp_path / "imgs" / "a" / "0.png").read_bytes()
    (tmp_path / "imgs" / "b").mkdir()
    (tmp_path / "imgs" / "b" / "cut.png").write_bytes(good[: len(good) // 2])     # truncated
    (tmp_path / "imgs" / "b" / "notes.png").write_text("not an image")
    (tmp_path / "imgs" / "b" / "dir.png").mkdir()                                  # a folder named like a file
    (tmp_path / "imgs" / "c").mkdir()                                              # a class without images
    png(tmp_path / "imgs" / "stray.png")
    head, *items = scan(DataConfig(name="folder", path="imgs"), tmp_path)
    assert "5 bad items" in head.message
    found = {Path(d.file).name: d.message for d in items}
    assert set(found) == {"cut.png", "notes.png", "dir.png", "c", "stray.png"}
    assert found["cut.png"].startswith("not a readable image") and found["notes.png"].startswith("not a readable")
    assert found["dir.png"] == "a folder where an image file is expected"
    assert found["c"] == "class folder holds no images" and "outside a class folder" in found["stray.png"]


def test_arrays_with_nan_samples_and_labels_out_of_range(tmp_path):
    images = np.random.default_rng(0).random((50, 1, 16, 16), dtype=np.float32)
    images[3] = np.nan
    images[7, 0, 0, 0] = np.inf
    labels = np.arange(50) % 10
    labels[1], labels[9] = -1, 10
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    head, *items = scan(DataConfig(name="npz", path="d.npz"), tmp_path)
    assert "4 bad items" in head.message
    assert [(d.file, d.message) for d in items] == [
        (f"{tmp_path / 'd.npz'}: images[3]", "holds NaN or inf"), (f"{tmp_path / 'd.npz'}: images[7]", "holds NaN or inf"),
        (f"{tmp_path / 'd.npz'}: labels[1]", "label -1 is outside 'y': 0..9"),
        (f"{tmp_path / 'd.npz'}: labels[9]", "label 10 is outside 'y': 0..9")]


def test_an_all_nan_data_set_is_refused_with_a_bounded_list(tmp_path):
    np.savez(tmp_path / "n.npz", images=np.full((300, 1, 16, 16), np.nan, np.float32))
    head, *items = scan(DataConfig(name="npz", path="n.npz"), tmp_path)
    assert "300 bad items" in head.message and len(items) == MAX_LISTED + 1
    assert items[-1].message == f"... and {300 - MAX_LISTED} more bad items (300 in all)"


@pytest.mark.parametrize("arrays,message", [
    ({"images": np.zeros((0, 1, 16, 16), np.float32)}, "holds no samples"),
    ({"images": np.zeros((4, 1, 16, 16), np.float32), "labels": np.array([0.5, 1, 2, 3])}, "whole numbers"),
    ({"images": np.zeros((4, 1, 16, 16), np.float32), "text": np.zeros((3, 2, 8))}, "one row per sample"),
])
def test_structurally_wrong_arrays(tmp_path, arrays, message):
    np.savez(tmp_path / "a.npz", **arrays)
    with pytest.raises(UserError, match=message):
        build_dataset(DataConfig(name="npz", path="a.npz"), INTERFACE, tmp_path)


def test_dry_run_scans_the_data(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", images=np.full((8, 1, 16, 16), np.nan, np.float32), labels=np.zeros(8, np.int64))
    (tmp_path / "r.yaml").write_text("data: {name: npz, path: d.npz}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(SPEC), "--recipe", str(tmp_path / "r.yaml"), "--dry-run"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "8 bad items" in err and "d.npz: images[7]: error: holds NaN" in err


def test_eval_reference_folder_with_a_corrupt_png(tmp_path):
    for k in range(3):
        png(tmp_path / "ref" / f"{k}.png", 50 * k)
    (tmp_path / "ref" / "1.png").write_bytes((tmp_path / "ref" / "0.png").read_bytes()[:30])
    with pytest.raises(UserError) as err:
        reference_input(str(tmp_path / "ref"), 16)
    head, item = err.value.diagnostics
    assert "reference folder" in head.message and "1 bad item" in head.message
    assert item.file == str(tmp_path / "ref" / "1.png") and item.message.startswith("not a readable image")
