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
    assert "(4 planes)" in widget.info.text()
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
    widget.form.planes.set_mode("current")
    widget.tile.setValue(128)
    widget.model.add_checkpoint(tiny_checkpoint)
    args = widget.job_arguments()
    settings = args["settings"]
    assert isinstance(args["image"], da.Array) and args["image"].shape == (64, 64)
    assert settings.tile == 128 and settings.overlap is None and settings.out is None
    assert settings.model == tiny_checkpoint.resolve()
    assert settings.diameter == "auto"  # the box's "auto": measured on a sample
    widget.diameter.setValue(18)
    assert widget.job_arguments()["settings"].diameter == 18


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
    assert args["settings"].out == tmp_path / "out" / "slide_labels.zarr"
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


def test_the_size_estimate_is_shown_above_run(qtbot, widget):
    widget.run()  # the bundled model, which records its nuclei's size
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    said = widget.estimate.text()
    assert "tiles of" in said and ("px across" in said or "not estimated" in said), said


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


def test_size_boxes_hold_only_multiples_of_16(widget):
    widget.tile.setValue(widget.tile.minimum())  # "auto"
    widget.tile.stepBy(1)
    assert widget.tile.value() == 64
    widget.tile.stepBy(1)
    assert widget.tile.value() == 128  # step 64 from 64, still a multiple of 16
    from qtpy.QtGui import QValidator

    state = widget.tile.validate("100", 3)[0]
    assert state == QValidator.State.Intermediate  # Qt will not take 100 as it is ...
    assert widget.tile.fixup("100") == "96"  # ... but rounds it when editing ends
    assert widget.tile.validate("112", 3)[0] == QValidator.State.Acceptable
    widget.overlap.stepBy(3)
    assert widget.overlap.auto_value() % 16 == 0


def test_a_size_typed_off_the_grid_is_marked_as_it_is_typed(widget, qtbot):
    from qtpy.QtCore import Qt

    box = widget.tile
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "10")
    assert box.invalid() and "becomes" in box.toolTip()  # marked while typing, before Run
    qtbot.keyClicks(box.lineEdit(), "0")
    assert box.invalid()
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Backspace)
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Backspace)
    qtbot.keyClicks(box.lineEdit(), "12")  # 112 = 7 × 16
    assert not box.invalid()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "100")
    box.editingFinished.emit()
    box.interpretText()
    assert not box.invalid() and box.value() in (96, 112)


def test_every_setting_reaches_the_engine(widget, tiny_checkpoint):
    widget.model.add_checkpoint(tiny_checkpoint)
    form = widget.form
    form.chunk.setValue(512)
    form.skip_background.setChecked(False)
    form.amp.setCurrentIndex(form.amp.findData(False))
    form.scheduler.setText("tcp://10.0.0.1:8786")
    form.min_size.setValue(40)
    form.tta.setCurrentIndex(form.tta.findData(4))
    assert (form.settings().denoise, form.settings().flatten) == ("auto", "auto")
    form.denoise.setCurrentIndex(form.denoise.findData(1.5))
    form.flatten.setCurrentIndex(form.flatten.findData(False))
    settings = widget.job_arguments()["settings"]
    assert settings.tta == 4 and settings.denoise == 1.5 and settings.flatten is False
    assert (settings.chunk, settings.skip_background, settings.amp) == (512, False, False)
    assert settings.scheduler == "tcp://10.0.0.1:8786" and settings.min_size == 40


def test_skipped_background_is_shown_over_the_image(make_napari_viewer):
    from napari_sa2net._widgets._background import show_skipped
    from napari_sa2net.inference.results import BackgroundMap

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((512, 512), np.uint16), name="im", scale=(2, 2))
    skipped = np.ones((32, 32), bool)
    skipped[10:20, 10:20] = False
    info = BackgroundMap(skipped, 16, (512, 512), (512, 512), 12, 16)
    layer = show_skipped(viewer, image, info)
    assert layer.name == "im skipped background" and tuple(layer.scale) == (32, 32)
    assert tuple(layer.translate) == (15, 15)  # a 16-px cell's centre, in world units
    assert layer.data[0, 0] == 1 and layer.data[15, 15] == 0
    none = BackgroundMap(np.zeros((32, 32), bool), 16, (512, 512), (512, 512), 0, 16)
    assert show_skipped(viewer, image, none) is None
    assert "im skipped background" not in viewer.layers  # a new run replaces the old layer
