"""``sa2net segment`` / ``batch`` on stacks: --plane, --axes, --stitch-z, --measure, --export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_sa2net.cli import main
from napari_sa2net.io import read_labels
from napari_sa2net.io.object_files import read_objects_table
from napari_sa2net.model import create_model, save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(create_model("sa2net-tiny", 1, 3), path)
    return path


@pytest.fixture
def stack_file(tmp_path, real_planes):
    path = tmp_path / "in" / "stack.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, real_planes(3, 96), imagej=True, metadata={"axes": "ZYX"})
    return path


def _base(image, out, checkpoint):
    return ["segment", str(image), "--out", str(out), "--model", str(checkpoint), "--device",
            "cpu", "--quiet"]  # fmt: skip


def test_segment_stack_measures_and_exports(stack_file, tmp_path, checkpoint, capsys):
    out = tmp_path / "out"
    flags = ["--measure", "--export", "geojson", "imagej", "--stitch-z", "0.25"]
    assert main([*_base(stack_file, out, checkpoint), *flags]) == 0
    printed = capsys.readouterr().out
    assert "in 3 planes (ZYX)" in printed and "geojson: " in printed
    labels, meta = read_labels(out / "stack.tif")
    assert labels.shape == (3, 96, 96) and meta["axes"] == "ZYX" and meta["stitch_z"] == 0.25
    table = read_objects_table(out / "stack_objects.csv")
    assert set(table["z"]) <= {0, 1, 2} and len(table["label"]) >= meta["n_objects"]
    features = json.loads((out / "stack.geojson").read_text())["features"]
    assert len(features) == len(table["label"])
    assert sorted(p.name for p in out.iterdir()) == [
        "stack.geojson", "stack.tif", "stack_objects.csv", "stack_rois.zip"]  # fmt: skip
    # every output counts: one that exists stops the run unless --overwrite
    (out / "stack.tif").unlink()
    assert main([*_base(stack_file, out, checkpoint), *flags]) == 2
    assert "stack_objects.csv" in capsys.readouterr().err


def test_plane_and_axes_flags_and_their_errors(stack_file, tmp_path, checkpoint, capsys):
    out = tmp_path / "out"
    assert main([*_base(stack_file, out, checkpoint), "--plane", "1"]) == 0
    assert read_labels(out / "stack.tif")[0].shape == (96, 96)
    for bad, says in [
        (["--plane", "Z=7"], "--plane Z=7 is out of range: axis Z has 0..2; use --plane Z=2"),
        (["--plane", "T=0"], "--plane T=0 names axis T"),
        (["--axes", "ZZX"], "--axes ZZX must be unique axis letters"),
        (["--axes", "TYX", "--stitch-z", "0.3"], "--stitch-z 0.3 links Z planes"),
        (["--stitch-z", "2"], "--stitch-z 2.0 must be an overlap"),
    ]:
        assert main([*_base(stack_file, tmp_path / "bad", checkpoint), *bad]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
    assert not (tmp_path / "bad").exists() or not list((tmp_path / "bad").iterdir())


def test_batch_writes_a_table_per_file_and_resumes_a_missing_one(stack_file, tmp_path,
                                                                 checkpoint, capsys):  # fmt: skip
    second = stack_file.with_name("other.tif")
    tifffile.imwrite(
        second, tifffile.imread(stack_file)[:2], imagej=True, metadata={"axes": "ZYX"}
    )
    out = tmp_path / "batch"
    args = ["batch", str(stack_file.parent), "--out", str(out), "--model", str(checkpoint),
            "--device", "cpu", "--quiet", "--measure"]  # fmt: skip
    assert main(args) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["other.tif", "other_objects.csv", "sa2net-summary.csv", "stack.tif",
                     "stack_objects.csv"]  # fmt: skip
    (out / "other_objects.csv").unlink()  # interrupted between the labels and the table
    before = (out / "stack.tif").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "other_objects.csv").exists() and (
        out / "stack.tif"
    ).stat().st_mtime_ns == before
    assert "1 done, 1 skipped" in capsys.readouterr().out
    assert np.asarray(read_labels(out / "other.tif")[0]).shape == (2, 96, 96)
