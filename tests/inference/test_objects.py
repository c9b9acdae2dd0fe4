"""Per-object measurements and the QuPath / ImageJ exports: chunked equals whole, round trips."""

from __future__ import annotations

import json

import numpy as np
import tifffile
import zarr
from skimage.draw import polygon as fill_polygon
from skimage.measure import regionprops_table

from napari_sa2net._progress import run_job
from napari_sa2net.inference.objects import PlaneInput, measure_job
from napari_sa2net.inference.outlines import outline, signed_area
from napari_sa2net.io.object_files import read_objects_table

LABELS = "tests/data/nuclei_crop_labels.tif"
IMAGE = "tests/data/nuclei_crop_image.tif"


def _measure(labels, image, chunk, **kwargs):
    planes = [PlaneInput((), {}, image[..., None])]
    return run_job(measure_job(labels, planes, max_id=int(labels.max()), chunk=chunk, **kwargs))


def test_measurements_equal_regionprops_on_the_whole_image_at_any_chunking():
    labels = tifffile.imread(LABELS).astype(np.uint32)  # real nuclei annotations, 256²
    image = tifffile.imread(IMAGE)
    whole = _measure(labels, image, 4096, pixel_size=(0.5, 0.25))
    props = ["label", "area", "centroid", "bbox", "intensity_mean", "intensity_max",
             "eccentricity", "solidity", "perimeter"]  # fmt: skip
    reference = regionprops_table(labels, image, properties=props)
    names = {"label": "label", "area_px": "area", "centroid_y": "centroid-0",
             "centroid_x": "centroid-1", "bbox_y1": "bbox-2", "mean_intensity": "intensity_mean",
             "max_intensity": "intensity_max", "eccentricity": "eccentricity",
             "solidity": "solidity", "perimeter": "perimeter"}  # fmt: skip
    for ours, theirs in names.items():
        np.testing.assert_allclose(whole.data[ours], reference[theirs], rtol=1e-12)
    np.testing.assert_allclose(whole.data["area_um2"], reference["area"] * 0.125)
    np.testing.assert_allclose(whole.data["integrated_intensity"],
                               [image[labels == i].sum() for i in reference["label"]])  # fmt: skip
    for chunk in (48, 100):  # objects cross these chunks' edges and corners
        chunked = _measure(labels, image, chunk, pixel_size=(0.5, 0.25))
        assert chunked.columns == whole.columns
        for column in whole.columns:
            np.testing.assert_allclose(chunked.data[column], whole.data[column], rtol=1e-12)


def _paint(polygons, shape) -> np.ndarray:
    """Rasterize GeoJSON-style polygons (outer ring, then holes) by pixel centres."""
    painted = np.zeros(shape, bool)
    for polygon in polygons:
        for k, ring in enumerate(np.asarray(r, float) for r in polygon):
            rr, cc = fill_polygon(ring[:, 1] - 0.5, ring[:, 0] - 0.5, shape)
            painted[rr, cc] = k == 0  # holes erase
    return painted


def test_outlines_rasterize_back_to_the_objects():
    labels = tifffile.imread(LABELS)
    for label in np.unique(labels)[1:]:
        mask = labels == label
        np.testing.assert_array_equal(_paint(outline(mask), mask.shape), mask)
        assert sum(signed_area(r) for p in outline(mask) for r in p) == mask.sum()


def test_segment_measures_and_exports_a_stack(stack_run, real_planes, tmp_path):
    from roifile import roiread

    stack = real_planes(3)
    result = stack_run(stack, axes="ZYX", measure=True, export=("geojson", "imagej"),
                       out=tmp_path / "s.zarr")  # fmt: skip
    table = result.objects
    labels = np.asarray(zarr.open_array(str(tmp_path / "s.zarr" / "0"), mode="r"))
    assert table.columns[:3] == ("label", "z", "area_px") and len(table) == result.n_objects
    for z in range(3):
        mine = table.data["z"] == z
        reference = regionprops_table(labels[z], stack[z], properties=["label", "intensity_mean"])
        np.testing.assert_array_equal(table.data["label"][mine], reference["label"])
        np.testing.assert_allclose(table.data["mean_intensity"][mine], reference["intensity_mean"])
    csv = read_objects_table(tmp_path / "s_objects.csv")
    np.testing.assert_allclose(csv["solidity"], table.data["solidity"], rtol=1e-9)
    attrs = json.loads((tmp_path / "s.zarr" / ".zattrs").read_text())
    properties = attrs["image-label"]["properties"]
    assert [p["label-value"] for p in properties] == table.data["label"].tolist()
    features = json.loads((tmp_path / "s.geojson").read_text())["features"]
    assert len(features) == result.n_objects
    for feature in features:  # polygons cover exactly their object's pixels
        label = int(feature["properties"]["name"])
        geometry = feature["geometry"]
        polygons = geometry["coordinates"]
        polygons = [polygons] if geometry["type"] == "Polygon" else polygons
        z = geometry["plane"]["z"]
        np.testing.assert_array_equal(_paint(polygons, labels.shape[1:]), labels[z] == label)
        assert feature["properties"]["objectType"] == "detection"
    rois = roiread(tmp_path / "s_rois.zip")
    assert len(rois) == result.n_objects
    first = rois[0]
    z, label = int(first.name[:4]) - 1, int(first.name[5:])
    assert first.position == z + 1
    mask = np.zeros(labels.shape[1:], bool)
    coords = first.coordinates()
    rr, cc = fill_polygon(coords[:, 1] - 0.5, coords[:, 0] - 0.5, mask.shape)
    assert set(np.unique(labels[z][rr, cc])) == {label}


def test_chunked_slide_measure_equals_in_memory_run(stack_run, tmp_path):
    image = tifffile.imread("src/napari_sa2net/_sample_data/nuclei_fluo.tif")[:200, :200]
    memory = stack_run(image, measure=True)
    disk = stack_run(image, measure=True, out=tmp_path / "a.zarr")
    for column in memory.objects.columns:
        np.testing.assert_allclose(disk.objects.data[column], memory.objects.data[column])
