"""`sa2net train` / `evaluate` through main(): user errors are one line, bugs keep a traceback."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import tifffile
import torch

from napari_sa2net.cli import main
from napari_sa2net.model import create_model, save_checkpoint


def train_args(folders, out):
    f = folders
    args = ["train", "--images", str(f["images"]), "--labels", str(f["labels"])]
    args += ["--val-images", str(f["val_images"]), "--val-labels", str(f["val_labels"])]
    args += ["--config", "sa2net-tiny", "--out", str(out), "--epochs", "1", "--device", "cpu"]
    return [*args, "--steps-per-epoch", "1", "--batch-size", "1", "--crop", "64", "--quiet"]


def failing_save(code):
    def save(obj, f, *args, **kwargs):
        raise OSError(code, errno.errorcode[code], str(getattr(f, "name", f)))

    return save


def one_error_line(capsys, command):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"sa2net {command}: error: "), err
    return err


@pytest.mark.parametrize(
    ("code", "expected"),
    [(errno.ENOSPC, "no space left on the device"), (errno.EROFS, "read-only")],
)
def test_train_onto_a_full_or_read_only_disk(tiny_folders, tmp_path, capsys, monkeypatch, code,
                                             expected):  # fmt: skip
    monkeypatch.setattr(torch, "save", failing_save(code))
    out = tmp_path / "run" / "model.pt"
    assert main(train_args(tiny_folders, out)) == 2
    err = one_error_line(capsys, "train")
    assert expected in err and "another folder" in err and str(out) in err
    assert "[Errno" not in err and ".partial-" not in err
    assert [p.name for p in out.parent.iterdir()] == []  # no partial checkpoint left behind


@pytest.fixture
def checkpoint(tmp_path):
    return save_checkpoint(create_model("sa2net-tiny"), tmp_path / "tiny.pt")


def evaluate_args(folders, checkpoint):
    images, labels = folders["val_images"], folders["val_labels"]
    return ["evaluate", "--model", str(checkpoint), "--images", str(images), "--labels",
            str(labels), "--device", "cpu"]  # fmt: skip


def test_evaluate_a_truncated_tiff(tiny_folders, checkpoint, capsys):
    image = tiny_folders["val_images"] / "img0.tif"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 3])
    assert main(evaluate_args(tiny_folders, checkpoint)) == 2
    assert "img0.tif" in one_error_line(capsys, "evaluate")


def test_evaluate_a_tiff_with_damaged_compressed_data(tiny_folders, checkpoint, capsys):
    image = tiny_folders["val_images"] / "img0.tif"
    pixels = np.arange(96 * 96, dtype=np.uint16).reshape(96, 96)
    tifffile.imwrite(image, pixels, compression="zlib")
    with tifffile.TiffFile(image) as tif:
        offset = tif.pages[0].dataoffsets[0]
    with open(image, "r+b") as handle:
        handle.seek(offset + 4)
        handle.write(b"\xa5" * 64)
    assert main(evaluate_args(tiny_folders, checkpoint)) == 2
    err = one_error_line(capsys, "evaluate")
    assert "img0.tif" in err and "intact" in err


def test_evaluate_out_of_memory_and_a_bug(tiny_folders, checkpoint, capsys, monkeypatch):
    from napari_sa2net.inference import api

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(api, "segment", out_of_memory)
    assert main(evaluate_args(tiny_folders, checkpoint)) == 2
    assert "out of memory; " in one_error_line(capsys, "evaluate")

    def bug(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(api, "segment", bug)
    with pytest.raises(KeyError):  # not a user error: the traceback reaches the user
        main(evaluate_args(tiny_folders, checkpoint))


def test_a_payload_checkpoint_is_refused_by_evaluate(tiny_folders, tmp_path, capsys,
                                                     write_payload):  # fmt: skip
    marker = tmp_path / "ran"
    evil = write_payload(tmp_path / "evil.pt", marker)
    assert main(evaluate_args(tiny_folders, evil)) == 2
    err = one_error_line(capsys, "evaluate")
    assert not marker.exists() and "evil.pt" in err and "nothing in it ran" in err


def test_evaluate_names_images_whose_ids_mark_several_objects(tiny_folders, checkpoint, capsys):
    path = sorted(tiny_folders["val_labels"].iterdir())[0]
    labels = np.zeros((96, 96), np.uint16)
    labels[10:30, 10:30] = labels[60:80, 60:80] = 5  # one id on two nuclei
    tifffile.imwrite(path, labels)
    assert main(evaluate_args(tiny_folders, checkpoint)) == 0
    out = capsys.readouterr().out
    assert f"note: {path.stem}: 1 label id(s) each mark several separate objects" in out
