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
