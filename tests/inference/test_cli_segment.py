"""``sa2net segment``: files in, label TIFF / OME-Zarr out, one summary line per file."""

from __future__ import annotations

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
