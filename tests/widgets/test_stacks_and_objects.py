"""Stacks in the segment widget, the objects table, and the GeoJSON / ImageJ writers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _planes(nuclei_crop, n=3):
    return np.stack([np.roll(nuclei_crop, (4 * z, 3 * z), (0, 1)) for z in range(n)])


def _wait(qtbot, widget, seconds=120):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=seconds * 1000)


@pytest.fixture
def stack_widget(make_napari_viewer, nuclei_crop, tiny_checkpoint):
    from napari_sa2net._widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    viewer.add_image(
        _planes(nuclei_crop), name="stack", scale=(2, 0.5, 0.5), translate=(0, 10, 20)
    )
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SA2-Net segment")
    widget.model.add_checkpoint(tiny_checkpoint)
    widget.tile.setValue(128)
    widget.interior.setValue(0.3)
    widget.foreground.setValue(0.3)
    widget.form.measure.setChecked(True)
    return widget


def test_every_plane_gives_a_labels_layer_with_the_image_dims_and_features(stack_widget, qtbot):
    widget, viewer = stack_widget, stack_widget.viewer
    assert widget.form.planes.mode() == "all"  # every plane by default, as on the CLI
    shown = []
    original = widget._progress

    def spy(event):
        original(event)
        if event.stage == "plane" and widget._stack is not None and widget._stack.layer:
            data = widget._stack.layer.data
            shown.append([bool(np.asarray(data[z]).any()) for z in range(3)])

    widget._progress = spy
    widget.run()
    _wait(qtbot, widget)
    layer = viewer.layers["stack labels"]
    assert layer.data.shape == (3, 128, 128)
    assert tuple(layer.scale) == (2, 0.5, 0.5) and tuple(layer.translate) == (0, 10, 20)
    assert shown and shown[0][1:] == [False, False]  # planes not done yet show empty
    features = layer.features
    assert list(features["index"]) == list(features["label"]) and set(features["z"]) <= {0, 1, 2}
    labels = np.asarray(layer.data)
    ids = [set(np.unique(p[p > 0])) for p in labels]
    assert not (ids[0] & ids[1]) and len(features) == sum(len(i) for i in ids)


def test_current_plane_is_shown_on_its_plane_only(stack_widget, qtbot):
    widget, viewer = stack_widget, stack_widget.viewer
    widget.form.planes.set_mode("current")
    viewer.dims.set_current_step(0, 1)
    assert widget.job_arguments()["image"].shape == (128, 128)
    widget.run()
    _wait(qtbot, widget)
    layer = viewer.layers["stack labels"]
    data = np.asarray(layer.data)
    assert data.shape == (3, 128, 128) and data[1].any() and not data[0].any()
    assert not data[2].any() and tuple(layer.scale) == (2, 0.5, 0.5)


def test_objects_table_sorts_selects_both_ways_and_exports(make_napari_viewer, tmp_path):
    from napari_sa2net._widgets.objects_table import ObjectsTableWidget
    from napari_sa2net.io.object_files import read_objects_table

    viewer = make_napari_viewer()
    labels = np.zeros((2, 40, 50), np.uint32)
    labels[0, 2:6, 3:9], labels[1, 20:30, 30:45], labels[1, 5:8, 5:8] = 1, 2, 3
    features = {"index": np.array([1, 2, 3]), "label": np.array([1, 2, 3]),
                "z": np.array([0, 1, 1]), "area_px": np.array([24, 150, 9]),
                "centroid_y": np.array([3.5, 24.5, 6.0]),
                "centroid_x": np.array([5.5, 37.0, 6.0])}  # fmt: skip
    layer = viewer.add_labels(labels, name="cells", features=features, scale=(1, 2, 2),
                              metadata={"napari_sa2net": {"axes": "ZYX"}})  # fmt: skip
    widget = ObjectsTableWidget(viewer)
    assert widget.rows() == 3 and widget.model.columns[0] == "label"
    assert widget.info.text() == "3 objects"
    stitched = dict(features, label=np.array([1, 2, 2]))  # one object through two planes
    layer.features = dict(stitched, z=np.array([0, 0, 1]))
    assert widget.info.text() == "3 rows: 2 objects on 2 planes"
    layer.features = features
    from qtpy.QtCore import Qt

    widget.table.sortByColumn(widget.model.columns.index("area_px"), Qt.SortOrder.AscendingOrder)
    first = widget.proxy.index(0, 0).data()
    assert first == "3"  # the smallest object first: numbers sort as numbers
    widget.table.selectRow(2)  # the largest: label 2 on plane 1
    assert layer.selected_label == 2
    assert viewer.dims.point[0] == 1 and np.allclose(viewer.camera.center[-2:], (49, 74))
    layer.selected_label = 1  # picked in the viewer: its row is selected
    current = widget.proxy.mapToSource(widget.table.currentIndex()).row()
    assert widget.model.value(current, "label") == 1
    written = widget.export_csv(str(tmp_path / "objects.csv"))
    assert read_objects_table(written)["area_px"].tolist() == [24, 150, 9]


def test_geojson_and_roi_writers_write_a_labels_layer(tmp_path):
    from roifile import roiread

    from napari_sa2net._export_writers import write_geojson, write_imagej_rois

    labels = np.zeros((2, 30, 30), np.uint32)
    labels[0, 2:6, 3:9], labels[1, 10:20, 10:15] = 1, 2
    meta = {"metadata": {"napari_sa2net": {"axes": "ZYX"}}, "scale": (1, 1, 1)}
    [path] = write_geojson(str(tmp_path / "a.geojson"), labels, meta)
    features = json.loads(Path(path).read_text())["features"]
    assert [f["geometry"]["plane"]["z"] for f in features] == [0, 1]
    assert features[1]["geometry"]["coordinates"][0][:4] == [
        [10, 10],
        [15, 10],
        [15, 20],
        [10, 20],
    ]
    [path] = write_imagej_rois(str(tmp_path / "a.zip"), labels, meta)
    rois = roiread(path)
    assert [r.position for r in rois] == [1, 2] and rois[1].name == "0002-00002"


def test_ome_channel_names_are_listed_and_the_reader_brings_features_back(
    make_napari_viewer, nuclei_crop, tiny_checkpoint, tmp_path
):
    import tifffile

    from napari_sa2net._progress import run_job
    from napari_sa2net._reader import read_sa2net_labels
    from napari_sa2net._widgets.segment import SegmentWidget
    from napari_sa2net.inference import segment_job

    planes = _planes(nuclei_crop, 2)
    data = np.stack([planes, planes[:, ::-1]])  # C, Z, Y, X
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "CZYX",
                     "Channel": {"Name": ["DAPI", "GFP"]}, "PhysicalSizeX": 0.5,
                     "PhysicalSizeY": 0.5})  # fmt: skip
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari")
    widget = SegmentWidget(viewer)
    names = [widget.channel.itemText(i) for i in range(widget.channel.count())]
    assert names == ["0: DAPI", "1: GFP"]
    widget.model.add_checkpoint(tiny_checkpoint)
    widget.channel.setCurrentIndex(0)
    arguments = widget.job_arguments()
    assert arguments["settings"].axes == "CZYX" and arguments["settings"].channel == 0
    out = tmp_path / "out" / "cells.zarr"
    run_job(segment_job(str(path), channel=0, model=tiny_checkpoint, measure=True, out=out,
                        tile=128, device="cpu", interior_threshold=0.3,
                        foreground_threshold=0.3))  # fmt: skip
    [(labels, meta, kind)] = read_sa2net_labels(str(out))
    level0 = labels[0] if isinstance(labels, list) else labels
    assert kind == "labels" and level0.shape == (2, 128, 128)
    assert meta["scale"] == (1.0, 0.5, 0.5) and meta["axis_labels"] == ("z", "y", "x")
    assert "area_um2" in meta["features"] and set(meta["features"]["z"]) <= {0, 1}


def test_batch_widget_builds_measure_and_export_settings(make_napari_viewer, tmp_path):
    from napari_sa2net._widgets.batch import BatchWidget

    widget = BatchWidget(make_napari_viewer())
    widget.input.set_path(tmp_path)
    widget.output.set_path(tmp_path / "out")
    widget.form.measure.setChecked(True)
    widget.form.exports.imagej.setChecked(True)
    widget.form.planes.set_mode("one")
    widget.form.planes.text.setText("Z=2")
    widget.form.stitch.setValue(0.3)
    settings = widget.job_arguments()["settings"]
    assert settings.measure and settings.export == ("imagej",)
    assert settings.plane == (("Z", 2),) and settings.stitch_z == 0.3
