"""``sa2net segment``: files in, label TIFF / OME-Zarr out, one summary line per file."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage as ndi

from napari_sa2net.cli import main
from napari_sa2net.io import read_labels
from napari_sa2net.model import create_model, save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(create_model("sa2net-tiny", 1, 3), path)
    return path


def _tif(path, size=160):
    image = ndi.gaussian_filter(np.random.default_rng(0).random((size, size)), 3) * 4000
    tifffile.imwrite(path, image.astype(np.uint16), tile=(64, 64))
    return path


def test_segment_writes_tif_and_zarr(tmp_path, checkpoint, capsys):
    image = _tif(tmp_path / "cells.tif")
    # (no --quiet: cli._bar.drive fails on disabled tqdm bars, reported to its owner)
    common = ["--model", str(checkpoint), "--tile", "128", "--overlap", "96", "--device", "cpu"]
    assert main(["segment", str(image), "--out", str(tmp_path / "out"), *common]) == 0
    line = capsys.readouterr().out
    assert "cells.tif:" in line and "objects" in line and "MP/s" in line
    labels, meta = read_labels(tmp_path / "out" / "cells.tif")
    assert labels.shape == (160, 160)
    assert meta["model"]["hash"] and meta["tiling"]["tile"] == 128
    args = ["segment", str(image), "--out", str(tmp_path / "out"), "--format", "zarr", *common]
    assert main(args) == 0
    assert (tmp_path / "out" / "cells.zarr").is_dir()
    assert main(args) == 2  # exists, no --overwrite
    assert "exists" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--no-skip-background"]) == 0


def test_segment_bad_arguments(tmp_path, checkpoint, capsys):
    image = _tif(tmp_path / "cells.tif", 64)
    base = ["segment", str(image), "--out", str(tmp_path / "o"), "--model", str(checkpoint)]
    assert main([*base, "--tile", "100"]) == 2
    assert "multiple of 16" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "missing.tif"), "--out", str(tmp_path)]) == 2
    assert "no such input" in capsys.readouterr().err
    same = ["segment", str(image), "--out", str(tmp_path), "--model", str(checkpoint)]
    assert main([*same, "--overwrite"]) == 2  # would replace its own input
    assert "input" in capsys.readouterr().err and image.exists()


def test_name_collisions_are_refused_before_any_work(tmp_path, checkpoint, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _tif(tmp_path / folder / "f0.tif", 64)
    inputs = [str(tmp_path / "a" / "f0.tif"), str(tmp_path / "b" / "f0.tif")]
    out = tmp_path / "o"
    for extra in ([], ["--overwrite"]):  # --overwrite must not lose the first image's labels
        assert main(["segment", *inputs, "--out", str(out), "--model", str(checkpoint),
                     *extra]) == 2  # fmt: skip
        err = capsys.readouterr().err
        assert "would both be written" in err and err.count("\n") == 1
        assert not out.exists() or not any(out.iterdir())


def test_every_setting_has_a_flag_and_errors_name_it(tmp_path, checkpoint, capsys):
    image = _tif(tmp_path / "cells.tif", 96)
    base = ["segment", str(image), "--out", str(tmp_path / "o"), "--model", str(checkpoint),
            "--device", "cpu", "--quiet"]  # fmt: skip
    flags = ["--interior-threshold", "0.3", "--foreground-threshold", "0.4", "--min-size", "5",
             "--chunk", "64", "--tile", "64", "--overlap", "16", "--batch-size", "2"]  # fmt: skip
    assert main([*base, *flags]) == 0
    _, meta = read_labels(tmp_path / "o" / "cells.tif")
    assert meta["thresholds"] == {
        "interior_threshold": 0.3,
        "foreground_threshold": 0.4,
        "min_size": 5,
        "seeds": "interior",  # this model has no centre map
    }
    assert meta["tiling"]["chunks"] == [64, 64] and meta["tiling"]["batch_size"] == 2
    capsys.readouterr()
    for bad, says in [
        (["--tile", "7"], "--tile 7 must be"),
        (["--interior-threshold", "1.5"], "--interior-threshold 1.5 must lie strictly"),
        (["--channel", "3"], "channel"),
        (["--device", "gpu0"], "--device gpu0 is not a device"),
    ]:
        assert main([*base, "--overwrite", *bad]) == 2
        err = capsys.readouterr().err
        assert says in err and not re.search(r"[a-z_]=[^=\s]", err), err  # no Python names


def test_auto_min_size_is_a_fifth_of_the_typical_object(tmp_path, capsys):
    from napari_sa2net.inference.postprocess import DEFAULT_MIN_SIZE, auto_min_size

    assert auto_min_size({"object_diameter_px": 26.7}) == 112  # the bundled model's nuclei
    assert auto_min_size({"object_diameter_px": 5.0}) == DEFAULT_MIN_SIZE  # never below 16
    assert auto_min_size({}) == DEFAULT_MIN_SIZE  # a model that records no size
    # objects measured in the image take the place of the model's
    assert auto_min_size({"object_diameter_px": 26.7}, diameter=40.0) == 251
    assert auto_min_size({}, diameter=40.0) == 251
    assert auto_min_size({"object_diameter_px": 26.7}, 30, diameter=40.0) == 30
    torch.manual_seed(0)
    net = create_model("sa2net-tiny", in_channels=1, num_classes=3)
    net.metadata["object_diameter_px"] = 40.0
    sized = save_checkpoint(net, tmp_path / "sized.pt")
    image = _tif(tmp_path / "cells.tif", 96)
    for extra, expected in ((["--diameter", "off"], 251), (["--min-size", "16"], 16)):
        out = tmp_path / f"o{extra[0]}"
        args = ["segment", str(image), "--out", str(out), "--model", str(sized), "--device",
                "cpu", "--quiet", *extra]  # fmt: skip
        assert main(args) == 0
        _, meta = read_labels(out / "cells.tif")
        assert meta["thresholds"]["min_size"] == expected
    capsys.readouterr()
