"""Folder pairing and plane reading: every bad input gets a message naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sa2net.io.folders import (
    find_image_label_pairs,
    read_image_plane,
    read_label_plane,
    read_training_pair,
)


def make_dirs(tmp_path: Path, images=("a", "b"), labels=("a", "b")) -> tuple[Path, Path]:
    img_dir, lab_dir = tmp_path / "images", tmp_path / "labels"
    img_dir.mkdir()
    lab_dir.mkdir()
    for name in images:
        tifffile.imwrite(img_dir / f"{name}.tif", np.arange(64, dtype=np.uint16).reshape(8, 8))
    for name in labels:
        tifffile.imwrite(lab_dir / f"{name}.tif", np.ones((8, 8), np.uint16))
    return img_dir, lab_dir


def test_pairs_by_stem_ignoring_hidden_files(tmp_path):
    img_dir, lab_dir = make_dirs(tmp_path)
    (img_dir / ".DS_Store").write_bytes(b"junk")
    (lab_dir / "sub").mkdir()
    tifffile.imwrite(lab_dir / "c.ome.tif", np.ones((8, 8), np.uint16))
    tifffile.imwrite(img_dir / "c.tiff", np.ones((8, 8), np.uint16))
    pairs = find_image_label_pairs(img_dir, lab_dir)
    assert [(i.name, lab.name) for i, lab in pairs] == [
        ("a.tif", "a.tif"),
        ("b.tif", "b.tif"),
        ("c.tiff", "c.ome.tif"),
    ]


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        find_image_label_pairs(tmp_path / "nope", tmp_path)
    (tmp_path / "empty").mkdir()
    img_dir, _ = make_dirs(tmp_path)
    with pytest.raises(ValueError, match="holds no images"):
        find_image_label_pairs(img_dir, tmp_path / "empty")


def test_unpaired_files_are_named(tmp_path):
    img_dir, lab_dir = make_dirs(tmp_path, images=("a", "b", "c"), labels=("a", "d"))
    with pytest.raises(ValueError, match="unpaired") as info:
        find_image_label_pairs(img_dir, lab_dir)
    message = str(info.value)
    assert "b.tif" in message and "c.tif" in message and "d.tif" in message


def test_non_image_files_are_named(tmp_path):
    img_dir, lab_dir = make_dirs(tmp_path)
    (img_dir / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"non-image files.*notes\.txt"):
        find_image_label_pairs(img_dir, lab_dir)


def test_duplicate_stems_are_refused(tmp_path):
    img_dir, lab_dir = make_dirs(tmp_path)
    tifffile.imwrite(img_dir / "a.tiff", np.ones((8, 8), np.uint16))
    with pytest.raises(ValueError, match="two files for 'a'"):
        find_image_label_pairs(img_dir, lab_dir)


def test_planes_come_back_yx_or_yxc(tmp_path):
    import imageio.v3 as iio

    tifffile.imwrite(
        tmp_path / "cyx.tif", np.zeros((3, 10, 12), np.uint8), metadata={"axes": "CYX"}
    )
    assert read_image_plane(tmp_path / "cyx.tif").shape == (10, 12, 3)
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((10, 12, 3), np.uint8), photometric="rgb")
    assert read_image_plane(tmp_path / "rgb.tif").shape == (10, 12, 3)
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((1, 10, 12), np.uint8))
    assert read_image_plane(tmp_path / "one.tif").shape == (10, 12)
    iio.imwrite(tmp_path / "rgba.png", np.zeros((10, 12, 4), np.uint8))
    assert read_image_plane(tmp_path / "rgba.png").shape == (10, 12, 3)


def test_stacks_are_refused(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((7, 10, 12), np.uint8), metadata={"axes": "ZYX"})
    with pytest.raises(ValueError, match=r"stack\.tif.*2-D image"):
        read_image_plane(path)


def test_unreadable_file(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match="cannot read"):
        read_image_plane(path)


def pair(tmp_path: Path, image: np.ndarray, labels: np.ndarray) -> tuple[Path, Path]:
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    return tmp_path / "img.tif", tmp_path / "lab.tif"


def test_good_pair(tmp_path):
    image, labels = read_training_pair(
        *pair(tmp_path, np.arange(80, dtype=np.uint16).reshape(8, 10), np.ones((8, 10), np.int32))
    )
    assert image.shape == (8, 10, 1) and labels.dtype == np.uint32


def test_shape_mismatch_names_the_file(tmp_path):
    paths = pair(
        tmp_path, np.arange(80, dtype=np.uint16).reshape(8, 10), np.ones((8, 9), np.uint16)
    )
    with pytest.raises(ValueError, match=r"img.tif: image is 8×10 but its labels lab.tif are 8×9"):
        read_training_pair(*paths)


def test_nan_and_constant_images(tmp_path):
    image = np.ones((8, 8), np.float32)
    image[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"img\.tif holds NaN"):
        read_training_pair(*pair(tmp_path, image, np.ones((8, 8), np.uint16)))
    with pytest.raises(ValueError, match=r"img\.tif is constant"):
        read_training_pair(
            *pair(tmp_path, np.full((8, 8), 5, np.uint8), np.ones((8, 8), np.uint8))
        )


def test_bad_labels(tmp_path):
    tifffile.imwrite(tmp_path / "prob.tif", np.full((8, 8), 0.5, np.float32))
    with pytest.raises(ValueError, match="non-integer"):
        read_label_plane(tmp_path / "prob.tif")
    tifffile.imwrite(tmp_path / "neg.tif", np.full((8, 8), -1, np.int16))
    with pytest.raises(ValueError, match="negative"):
        read_label_plane(tmp_path / "neg.tif")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    with pytest.raises(ValueError, match="2-D plane"):
        read_label_plane(tmp_path / "rgb.tif")
    tifffile.imwrite(tmp_path / "whole.tif", np.full((8, 8), 3.0, np.float32))
    assert read_label_plane(tmp_path / "whole.tif").dtype == np.uint32
