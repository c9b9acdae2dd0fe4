"""The "SA2-Net batch" widget: wiring, a folder with a corrupt file, cancel, resume."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sa2net._progress import Progress
from napari_sa2net.inference.batch import FileRecord

pytestmark = pytest.mark.gui


@pytest.fixture
def folder(tmp_path, nuclei_crop):
    tifffile = pytest.importorskip("tifffile")
    inputs = tmp_path / "plate"
    inputs.mkdir()
    for i, (y, x) in enumerate([(0, 0), (0, 64), (64, 0)]):
        tifffile.imwrite(inputs / f"well_{i}.tif", nuclei_crop[y : y + 64, x : x + 64])
    (inputs / "well_9.tif").write_bytes(b"II*\x00 truncated upload")
    (inputs / "notes.txt").write_text("not an image")
    return inputs


@pytest.fixture
def widget(make_napari_viewer, folder, tiny_checkpoint, tmp_path):
    from napari_sa2net._widgets.batch import BatchWidget

    viewer = make_napari_viewer()
    w = BatchWidget(viewer)
    viewer.window.add_dock_widget(w, name="SA2-Net batch")
    w.model.add_checkpoint(tiny_checkpoint)
    w.input.set_path(folder)
    w.output.set_path(tmp_path / "labels")
    return w


def wait_idle(qtbot, widget, timeout=300_000):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def test_widget_lists_matching_files_and_reads_file_events(widget):
    assert widget.table.names() == ["well_0.tif", "well_1.tif", "well_2.tif", "well_9.tif"]
    assert {widget.table.status(n) for n in widget.table.names()} == {"queued"}
    widget.pattern.setText("well_1*; well_2*")
    widget.list_files()
    assert widget.table.names() == ["well_1.tif", "well_2.tif"]
    running = FileRecord("well_1.tif", "segmenting")
    done = FileRecord("well_2.tif", "done", 4, 20.0, 1.0)
    widget.table.update_from(Progress("file", 0, 2, 0, "anything", payload=running))
    widget.table.update_from(Progress("file", 1, 2, 0, "text is not parsed", payload=done))
    assert widget.table.status("well_1.tif") == "running"
    assert widget.table.status("well_2.tif") == "done"
    assert widget.table.item(1, 2).text() == "4"
    args = widget.job_arguments()
    assert args["patterns"] == ["well_1*", "well_2*"] and args["resume"] is True
    assert args["settings"].tile is None  # auto: the engine decides


def test_batch_cancel_then_resume_with_a_corrupt_file(qtbot, widget, tmp_path):
    out = tmp_path / "labels"
    widget.format.setCurrentIndex(widget.format.findData("tif"))
    seen: list[str] = []

    def cancel_after_first_file(event):
        seen.append(event.message)
        if event.level == 0 and ": done" in event.message:
            widget.cancel()

    widget.run()
    widget.worker.yielded.connect(cancel_after_first_file)
    wait_idle(qtbot, widget)
    finished = sorted(p.name for p in out.glob("*.tif"))
    assert finished == ["well_0.tif"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no partial output
    assert widget.table.status("well_0.tif") == "done"

    widget.run()  # resume: the finished file is skipped, the corrupt one fails, others run
    wait_idle(qtbot, widget)
    statuses = {name: widget.table.status(name) for name in widget.table.names()}
    assert statuses == {
        "well_0.tif": "skipped",
        "well_1.tif": "done",
        "well_2.tif": "done",
        "well_9.tif": "failed",
    }
    assert sorted(p.name for p in out.glob("*.tif")) == ["well_0.tif", "well_1.tif", "well_2.tif"]
    assert "sa2net-summary.csv" in widget.summary.text()
    rows = (out / "sa2net-summary.csv").read_text().splitlines()
    assert rows[0].startswith("file,status,objects") and len(rows) == 5
    labels = pytest.importorskip("tifffile").imread(out / "well_1.tif")
    assert labels.shape == (64, 64) and labels.dtype == np.uint32
