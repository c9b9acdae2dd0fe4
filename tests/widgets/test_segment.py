"""The "SA2-Net segment" widget: wiring, a run with a tiny model, cancel."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture
def widget(make_napari_viewer, nuclei_crop):
    from napari_sa2net._widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    viewer.add_image(nuclei_crop, name="nuclei", scale=(0.5, 0.5), translate=(10, 20))
    w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(w, name="SA2-Net segment")
    return w


def test_widget_docks_and_lists_image_layers(widget):
    viewer = widget.viewer
    assert [widget.image.itemText(i) for i in range(widget.image.count())] == ["nuclei"]
    viewer.add_image(np.zeros((4, 32, 32, 3), np.uint8), rgb=True, name="rgb stack")
    viewer.add_labels(np.zeros((8, 8), np.uint32), name="not an image")
    names = [widget.image.itemText(i) for i in range(widget.image.count())]
    assert names == ["nuclei", "rgb stack"]
    widget.image.setCurrentText("rgb stack")
    assert widget.channel.isEnabled() and widget.channel.count() == 4
    assert "(segments the current plane)" in widget.info.text()
    assert widget.device.itemText(0).startswith("auto (")
    assert widget.model.itemText(widget.model.count() - 1).startswith("Browse")
    viewer.layers.remove("nuclei")
    assert widget.image.count() == 1


def test_job_arguments_take_a_plane_lazily(widget, tiny_checkpoint):
    da = pytest.importorskip("dask.array")
    viewer = widget.viewer
    stack = da.zeros((3, 64, 64), dtype=np.uint16, chunks=(1, 32, 32))
    viewer.add_image(stack, name="stack")
    viewer.dims.set_current_step(0, 2)
    widget.image.setCurrentText("stack")
    widget.tile.setValue(128)
    widget.model.add_checkpoint(tiny_checkpoint)
    args = widget.job_arguments()
    assert isinstance(args["image"], da.Array) and args["image"].shape == (64, 64)
    assert args["tile"] == 128 and args["overlap"] is None and args["out"] is None
    assert args["model"] == tiny_checkpoint.resolve()
    assert args["diameter"] is None
    widget.diameter.setValue(18)
    assert widget.job_arguments()["diameter"] == 18


def test_multiscale_dask_layer_is_passed_lazily(widget, tiny_checkpoint, tmp_path):
    da = pytest.importorskip("dask.array")
    reads: list[int] = []

    def count_reads(block):
        reads.append(1)
        return block

    base = da.zeros((4096, 4096), chunks=1024, dtype=np.uint16).map_blocks(count_reads)
    widget.viewer.add_image([base, base[::4, ::4], base[::16, ::16]], name="slide")
    widget.image.setCurrentText("slide")
    widget.model.add_checkpoint(tiny_checkpoint)
    widget.output.set_path(tmp_path / "out")
    reads.clear()
    args = widget.job_arguments()
    assert reads == []  # choosing the layer and building the job reads no pixel
    assert args["image"].shape == (4096, 4096) and isinstance(args["image"], da.Array)
    assert args["out"] == tmp_path / "out" / "slide_labels.zarr"
    assert "3 levels" in widget.info.text()


def test_run_adds_labels_with_the_image_transform(qtbot, widget, tiny_checkpoint):
    widget.model.add_checkpoint(tiny_checkpoint)
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    layer = widget.viewer.layers["nuclei labels"]
    assert layer.data.shape == (128, 128)
    assert tuple(layer.scale) == (0.5, 0.5) and tuple(layer.translate) == (10, 20)
    assert " in " in widget.bar.status.text() and "object" in widget.bar.status.text()
    assert widget.bar.run.isEnabled() and not widget.bar.cancel.isEnabled()


def test_cancel_stops_the_worker_and_leaves_no_output(qtbot, widget, tiny_checkpoint, tmp_path):
    from napari_sa2net._sample_data import nuclei_fluorescence

    [(image, _, _)] = nuclei_fluorescence()
    widget.viewer.add_image(image, name="big")
    widget.image.setCurrentText("big")
    widget.model.add_checkpoint(tiny_checkpoint)
    widget.tile.setValue(128)
    widget.overlap.setValue(32)
    widget.batch.setValue(1)
    out = tmp_path / "out"
    widget.output.set_path(out)
    widget.run()
    events = []
    widget.worker.yielded.connect(lambda e: (events.append(e), widget.cancel()))
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    assert events and "big labels" not in widget.viewer.layers
    assert list(out.iterdir()) == []  # the partial store was removed
    assert "cancelled" in widget.bar.status.text()
