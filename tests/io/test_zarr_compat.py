"""io._zarr_compat: the same files on disk with zarr-python 2.18 (Python 3.10) and 3.x."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from numcodecs import Blosc

from napari_sa2net.io._zarr_compat import (
    ZARR_V3,
    create_array,
    create_v2_array,
    create_v2_group,
)


def test_v2_group_and_array_are_ngff_0_4_layout(tmp_path):
    group = create_v2_group(tmp_path / "labels.zarr")
    blosc = Blosc(cname="zstd", clevel=3, shuffle=Blosc.BITSHUFFLE)
    array = create_v2_array(
        group, "0", shape=(5, 7), chunks=(4, 4), dtype=np.uint32, compressor=blosc
    )
    array[...] = np.arange(35, dtype=np.uint32).reshape(5, 7)
    root = tmp_path / "labels.zarr"
    assert (root / ".zgroup").is_file() and not (root / "zarr.json").exists()
    meta = json.loads((root / "0" / ".zarray").read_text())
    assert meta["zarr_format"] == 2 and meta["dimension_separator"] == "/"
    assert meta["fill_value"] == 0 and meta["dtype"] == "<u4"
    assert meta["compressor"]["id"] == "blosc" and meta["compressor"]["cname"] == "zstd"
    assert (root / "0" / "1" / "1").is_file()  # chunk (1, 1) under a nested key
    reopened = zarr.open_group(str(root), mode="r")["0"]
    np.testing.assert_array_equal(reopened[...], np.arange(35).reshape(5, 7))


def test_scratch_array_round_trip_and_overwrite(tmp_path):
    path = tmp_path / "scratch"
    array = create_array(path, shape=(6, 9), chunks=(4, 4), dtype="uint8", fill_value=3)
    array[1:3, 2:8] = 7
    stored = zarr.open_array(str(path), mode="r")
    expected = np.full((6, 9), 3, np.uint8)
    expected[1:3, 2:8] = 7
    np.testing.assert_array_equal(stored[...], expected)
    assert (path / ("zarr.json" if ZARR_V3 else ".zarray")).is_file()
    again = create_array(path, shape=(2, 2), chunks=(2, 2), dtype="uint8", overwrite=True)
    assert again.shape == (2, 2) and zarr.open_array(str(path), mode="r")[0, 0] == 0


@pytest.mark.skipif(ZARR_V3, reason="zarr 3 writes format 3")
def test_format_3_on_zarr_2_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"zarr_format=3 needs zarr-python >= 3.*zarr_format=2"):
        create_array(tmp_path / "a", shape=(2, 2), chunks=(2, 2), dtype="u1", zarr_format=3)


@pytest.mark.skipif(not ZARR_V3, reason="zarr 2 writes format 2 only")
def test_format_2_on_request_with_zarr_3(tmp_path):
    create_array(tmp_path / "a", shape=(2, 2), chunks=(2, 2), dtype="u1", zarr_format=2)
    assert (tmp_path / "a" / ".zarray").is_file() and not (tmp_path / "a" / "zarr.json").exists()
