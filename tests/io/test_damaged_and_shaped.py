"""TIFF descriptions tifffile misreads, zarr stores that are damaged or ask to unpickle."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import tifffile

from napari_sa2net.io import open_image, read_labels, write_labels_tiff, write_ome_zarr_labels
from napari_sa2net.io.folders import read_image_plane


def labels(shape=(64, 48)) -> np.ndarray:
    out = np.zeros(shape, np.uint32)
    out[5:20, 4:30] = 3
    out[30:60, 10:40] = 8
    return out


@pytest.mark.parametrize(
    "shape", ["round", None, [64.0, 48.0], [[64]], 5, [2, 64, 48], [10, 10]], ids=repr
)
def test_a_top_level_shape_key_tifffile_cannot_use_is_ignored(tmp_path, shape):
    path = tmp_path / "odd.tif"
    description = json.dumps({"shape": shape, "napari_sa2net": {"model": "x"}})
    tifffile.imwrite(path, labels(), description=description, metadata=None)
    data, meta = read_labels(path)
    np.testing.assert_array_equal(np.asarray(data), labels())
    assert meta == {"model": "x"}
    np.testing.assert_array_equal(read_image_plane(path), labels())


def test_a_tiled_file_with_a_bad_shape_key(tmp_path):
    path = tmp_path / "tiled.tif"
    big = np.tile(labels(), (5, 6))  # 320 × 288, tiled
    tifffile.imwrite(path, big, tile=(64, 64), description='{"shape": "x"}', metadata=None)
    np.testing.assert_array_equal(np.asarray(open_image(path).data[..., 0]), big)


def test_provenance_with_shape_keys_stays_readable_by_any_tifffile_user(tmp_path):
    meta = {"shape": [3, 3], "plan": {"shape": "round"}, "note": 'a "shape": b'}
    path = write_labels_tiff(tmp_path / "out.tif", labels(), meta)
    np.testing.assert_array_equal(tifffile.imread(path), labels())  # napari's own reader
    data, read_meta = read_labels(path)
    assert read_meta == meta
    np.testing.assert_array_equal(np.asarray(data), labels())


def test_a_damaged_zarr_chunk_names_the_store(tmp_path):
    store = write_ome_zarr_labels(tmp_path / "out.zarr", labels(), {"m": 1})
    [chunk] = [p for p in (store / "0").rglob("*") if p.is_file() and p.name[0] != "."]
    with open(chunk, "r+b") as handle:
        handle.seek(16)
        handle.write(b"\xa5" * 24)
    image = open_image(store)  # metadata only: opens
    image = pickle.loads(pickle.dumps(image))  # as shipped to a distributed worker
    with pytest.raises(ValueError, match=r"cannot read .*out\.zarr: .*damaged or incomplete"):
        image.data.compute()


def test_broken_zarr_metadata_is_one_clear_value_error(tmp_path):
    store = write_ome_zarr_labels(tmp_path / "out.zarr", labels(), {"m": 1})
    attrs = json.loads((store / ".zattrs").read_text())
    attrs["multiscales"][0]["datasets"] = [{"no": "path"}]
    (store / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(ValueError, match="malformed OME-Zarr multiscales"):
        open_image(store)
    (store / ".zattrs").write_text("{")
    with pytest.raises(ValueError, match="damaged or incomplete"):
        open_image(store)


@pytest.mark.parametrize(
    "codecs",
    [
        {"dtype": "<u2", "compressor": None, "filters": [{"id": "pickle", "protocol": 5}]},
        {"dtype": "<u2", "compressor": {"id": "pickle"}, "filters": None},
        {"dtype": "|O", "compressor": None, "filters": [{"id": "json2"}]},
    ],
)
def test_zarr_arrays_that_would_unpickle_are_refused(tmp_path, write_payload, codecs):
    store = tmp_path / "evil.zarr"
    store.mkdir()
    meta = {"zarr_format": 2, "shape": [4, 4], "chunks": [4, 4], "order": "C", "fill_value": 0}
    (store / ".zarray").write_text(json.dumps({**meta, **codecs}))
    write_payload(store / "0.0", tmp_path / "ran", legacy=True)
    with pytest.raises(ValueError, match="nothing ran: save the image as a numeric zarr array"):
        open_image(store).data.compute()
    assert not (tmp_path / "ran").exists()
