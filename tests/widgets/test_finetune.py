"""The "SA2-Net finetune" widget: wiring, regions from shapes, a short run, stop."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture
def widget(make_napari_viewer, nuclei_crop, tiny_checkpoint, tmp_path):
    from napari_sa2net._widgets.finetune import FinetuneWidget

    viewer = make_napari_viewer()
    viewer.add_image(nuclei_crop, name="nuclei", scale=(2, 2))
    painted = np.zeros(nuclei_crop.shape, np.uint32)
    painted[20:34, 20:36] = 1
    painted[60:75, 50:62] = 2
    viewer.add_labels(painted, name="painted", scale=(2, 2))
    w = FinetuneWidget(viewer)
    viewer.window.add_dock_widget(w, name="SA2-Net finetune")
    w.model.add_checkpoint(tiny_checkpoint)
    w.output.set_path(tmp_path / "mine.pt")
    return w


def test_widget_lists_layers_and_builds_arguments(widget, tiny_checkpoint, tmp_path):
    assert widget.image.currentText() == "nuclei"
    assert widget.labels.currentText() == "painted"
    assert widget.regions.layer() is None  # default: boxes around the painted nuclei
    args = widget.job_arguments()
    assert args["regions"] is None and args["model"] == tiny_checkpoint.resolve()
    assert args["image"].shape == args["labels"].shape == (128, 128)
    assert args["out"] == tmp_path / "mine.pt" and args["freeze_encoder"] is True
    # A rectangle drawn in world coordinates (scale 2) maps to image pixels.
    widget.viewer.add_shapes([np.array([[20.0, 20.0], [100.0, 140.0]])], shape_type="rectangle",
                             name="regions")  # fmt: skip
    widget.regions.setCurrentText("regions")
    assert widget.job_arguments()["regions"] == [(10, 10, 50, 70)]
    widget.unit.setCurrentText("minutes")
    widget.length.setValue(2)
    args = widget.job_arguments()
    assert args["epochs"] is None and args["time_budget_minutes"] == 2.0


def test_mismatched_labels_name_the_fix(widget):
    widget.viewer.add_labels(np.zeros((50, 50), np.uint32), name="wrong size")
    widget.labels.setCurrentText("wrong size")
    with pytest.raises(ValueError, match="New Labels layer"):
        widget.job_arguments()
    widget.labels.setCurrentText("painted")
    widget.output.set_path("model.pth")
    with pytest.raises(ValueError, match=r"\.pt"):
        widget.job_arguments()


def test_a_rectangle_with_nothing_painted_starts_no_job(widget, monkeypatch):
    from napari.utils import notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    widget.viewer.layers["painted"].data = np.zeros((128, 128), np.uint32)
    widget.viewer.add_shapes([np.array([[20.0, 20.0], [100.0, 140.0]])], shape_type="rectangle",
                             name="regions")  # fmt: skip
    widget.regions.setCurrentText("regions")
    widget.start()
    assert widget.worker is None and widget.bar.run.isEnabled()
    assert len(shown) == 1 and "nothing is painted inside the 1 region(s)" in shown[0]
    widget.regions.setCurrentIndex(0)  # boxes of painted nuclei: there are none either
    widget.start()
    assert widget.worker is None and "nothing is painted: paint some nuclei" in shown[-1]


def test_the_curve_plot_paints_series(qtbot):
    from napari_sa2net._widgets._plot import CurvePlot

    plot = CurvePlot()
    qtbot.addWidget(plot)
    plot.resize(300, 150)
    plot.add_point("loss", 1, 0.9)
    plot.add_point("loss", 2, float("nan"))  # ignored
    plot.add_point("loss", 3, 0.4)
    plot.add_point("val_dice", 1, 0.3)
    image = plot.grab().toImage()
    assert plot.series == {"loss": [(1.0, 0.9), (3.0, 0.4)], "val_dice": [(1.0, 0.3)]}
    assert image.width() == 300


def test_finetune_lowers_the_loss_and_registers_the_model(qtbot, widget, tmp_path):
    from napari_sa2net._widgets._session import SESSION_MODELS

    widget.viewer.add_shapes([np.array([[20.0, 20.0], [180.0, 180.0]])], shape_type="rectangle",
                             name="regions")  # fmt: skip
    widget.regions.setCurrentText("regions")
    widget.length.setValue(3)
    widget.steps.setValue(2)
    widget.lr.setValue(3e-3)
    widget.freeze.setChecked(False)
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    losses = [y for _, y in widget.plot.series["loss"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert "val_dice" in widget.plot.series
    assert "finetune preview" in widget.viewer.layers
    assert SESSION_MODELS.paths() == [(tmp_path / "mine.pt").resolve()]
    assert widget.model.index_of(tmp_path / "mine.pt") >= 0  # listed for reuse


def test_stop_keeps_the_best_checkpoint_so_far(qtbot, widget, tmp_path):
    widget.length.setValue(200)
    widget.steps.setValue(1)
    epochs = []

    def stop_after_one_epoch(event):
        if event.stage == "epoch" and event.current >= 1:
            epochs.append(event.current)
            widget.stop()

    widget.start()
    widget.worker.yielded.connect(stop_after_one_epoch)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    assert epochs and epochs[0] == 1
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no partial files
    if (tmp_path / "mine.pt").exists():  # saved when validation improved
        assert "kept the best checkpoint" in widget.bar.status.text()
    else:
        assert "no checkpoint was saved" in widget.bar.status.text()
