"""`sa2net train` then `sa2net evaluate` in-process on tiny synthetic TIFF folders."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_sa2net.cli import main
from napari_sa2net.model import load_model


def test_train_then_evaluate(tiny_folders, tmp_path, capsys):
    out = tmp_path / "cli" / "model.pt"
    f = tiny_folders
    args = ["train", "--images", str(f["images"]), "--labels", str(f["labels"])]
    args += ["--val-images", str(f["val_images"]), "--val-labels", str(f["val_labels"])]
    args += ["--config", "sa2net-tiny", "--out", str(out), "--epochs", "1", "--device", "cpu"]
    args += ["--steps-per-epoch", "2", "--batch-size", "2", "--crop", "64", "--quiet"]
    assert main([*args, "--boundary-width", "2", "--augment", "wide"]) == 0
    printed = capsys.readouterr().out
    assert "on cpu" in printed and f"best checkpoint: {out}" in printed
    assert out.is_file()
    recipe = load_model(out).metadata["training"]["recipe"]
    assert (recipe["boundary_width"], recipe["augment"]) == (2, "wide")

    assert main(["train", *args[1:]]) == 2  # the best checkpoint exists: refused ...
    assert "--overwrite" in capsys.readouterr().err
    assert out.is_file()  # ... and kept

    code = main(
        ["evaluate", "--model", str(out), "--images", str(f["val_images"]), "--labels",
         str(f["val_labels"]), "--device", "cpu"]
    )  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["image", "dice", "iou", "f1_50", "f1_75", "aji"]
    assert lines[2].split()[0] == "img0" and lines[-1].split()[0] == "mean"
    values = [float(v) for v in lines[-1].split()[1:]]
    assert len(values) == 5 and all(0.0 <= v <= 1.0 for v in values)


def test_bad_training_data_gives_one_clear_line(tiny_folders, tmp_path, capsys):
    images, labels = tiny_folders["images"], tiny_folders["labels"]
    tifffile.imwrite(labels / "img1.tif", np.ones((50, 50), np.uint16))
    args = ["train", "--images", str(images), "--labels", str(labels), "--out"]
    assert main([*args, str(tmp_path / "m.pt"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sa2net train: error: img1.tif: image is 96×96 but its labels")
    assert not (tmp_path / "m.pt").exists()


def test_a_bad_boundary_width_is_refused_by_name(tiny_folders, tmp_path, capsys):
    f = tiny_folders
    args = ["train", "--images", str(f["images"]), "--labels", str(f["labels"])]
    args += ["--out", str(tmp_path / "m.pt"), "--boundary-width"]
    for bad in ("0", "wide"):
        with pytest.raises(SystemExit) as exit_:  # argparse refuses before anything runs
            main([*args, bad])
        assert exit_.value.code == 2
        assert "--boundary-width" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_an_unknown_augmentation_is_one_line_naming_the_flag(tiny_folders, tmp_path, capsys):
    f = tiny_folders
    args = ["train", "--images", str(f["images"]), "--labels", str(f["labels"])]
    assert main([*args, "--out", str(tmp_path / "m.pt"), "--augment", "strong"]) == 2
    err = capsys.readouterr().err.strip()
    from napari_sa2net.engine.augment import PRESETS

    assert err.count("\n") == 0 and "--augment" in err and ", ".join(PRESETS) in err
    assert not (tmp_path / "m.pt").exists()
