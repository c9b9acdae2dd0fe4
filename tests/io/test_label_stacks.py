"""Label stacks (Z / T planes) and the per-object files: written, read back, validated."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from napari_sa2net.io import read_labels, write_labels_tiff, write_ome_zarr_labels
from napari_sa2net.io.object_files import (
    GeoJsonWriter,
    RoiZipWriter,
    read_objects_table,
    write_objects_csv,
)


def _stack(shape=(2, 3, 40, 50), seed=0):
    return np.random.default_rng(seed).integers(0, 9, shape).astype(np.uint32)


@pytest.mark.parametrize("axes", ["ZYX", "TZYX"])
def test_tiff_stack_round_trip(tmp_path, axes):
    labels = _stack((2, 3, 40, 50)[-len(axes) :])
    path = write_labels_tiff(tmp_path / "s.tif", labels, {"m": 1}, axes=axes, pixel_size=(1, 1))
    data, meta = read_labels(path)
    np.testing.assert_array_equal(np.asarray(data), labels)
    assert meta["axes"] == axes and meta["label_shape"] == list(labels.shape) and meta["m"] == 1
    assert data.chunks[0] == (1,) * labels.shape[0]  # one plane per chunk: read lazily


def test_ome_zarr_stack_validates_with_ome_zarr_models(tmp_path):
    # ome-zarr-models needs Python >= 3.11 (it comes with bioimageio.spec there)
    image_label = pytest.importorskip("ome_zarr_models.v04.image_label")
    ImageLabel = image_label.ImageLabel

    labels = np.zeros((3, 1100, 1030), np.uint32)
    labels[1, 5:9, 7:20] = 4
    properties = [{"label-value": 4, "area_px": 52}]
    path = write_ome_zarr_labels(tmp_path / "s.zarr", labels, {"m": 1}, axes="zyx",
                                 pixel_size=(0.25, 0.25), properties=properties)  # fmt: skip
    model = ImageLabel.from_zarr(zarr.open_group(str(path), mode="r"))
    assert model.attributes.image_label.properties[0].label_value == 4
    attrs = json.loads((path / ".zattrs").read_text())
    axes = attrs["multiscales"][0]["axes"]
    assert [a["name"] for a in axes] == ["z", "y", "x"] and axes[0]["type"] == "space"
    datasets = attrs["multiscales"][0]["datasets"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in datasets]
    assert scales == [[1.0, 0.25, 0.25], [1.0, 0.5, 0.5]]  # the pyramid shrinks Y, X only
    np.testing.assert_array_equal(np.asarray(read_labels(path)[0]), labels)
    assert read_labels(path, level=1)[0].shape == (3, 550, 515)


def test_objects_csv_round_trip(tmp_path):
    data = {"label": np.array([1, 2]), "z": np.array([0, 3]), "area_um2": np.array([1.5, np.nan])}
    write_objects_csv(tmp_path / "o.csv", list(data), data)
    back = read_objects_table(tmp_path / "o.csv")
    assert back["label"].dtype.kind == "i" and back["label"].tolist() == [1, 2]
    assert back["area_um2"][0] == 1.5 and np.isnan(back["area_um2"][1])


def test_geojson_is_a_qupath_feature_collection(tmp_path):
    writer = GeoJsonWriter(tmp_path / "o.geojson")
    square = np.array([[2, 3], [6, 3], [6, 8], [2, 8]])
    writer.add([[square]], {"area_px": 20.0, "solidity": 1.0}, "1", plane={"z": 2})
    writer.add([[square], [square + 10]], {"area_px": 40.0}, "2")
    writer.close()
    doc = json.loads((tmp_path / "o.geojson").read_text())
    first, second = doc["features"]
    assert doc["type"] == "FeatureCollection" and first["type"] == "Feature"
    assert first["properties"]["objectType"] == "detection"
    assert first["properties"]["measurements"] == {"area_px": 20, "solidity": 1}
    ring = first["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] == [2, 3] and len(ring) == 5
    assert first["geometry"]["plane"] == {"c": -1, "z": 2, "t": 0}
    assert second["geometry"]["type"] == "MultiPolygon"


def test_roi_zip_opens_with_roifile(tmp_path):
    from roifile import ROI_TYPE, roiread

    writer = RoiZipWriter(tmp_path / "r.zip")
    square = np.array([[2, 3], [6, 3], [6, 8], [2, 8]])
    writer.add(square, "0001", {"position": 2})
    writer.add(square + 5, "0002", {"z": 1, "t": 0})
    writer.close()
    first, second = roiread(tmp_path / "r.zip")
    assert first.name == "0001" and first.roitype == ROI_TYPE.TRACED and first.position == 3
    np.testing.assert_array_equal(first.coordinates(), square)
    assert (first.left, first.top, first.right, first.bottom) == (2, 3, 6, 8)
    assert (second.z_position, second.t_position) == (2, 1)
