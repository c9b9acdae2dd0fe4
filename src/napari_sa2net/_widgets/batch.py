"""The "SA2-Net batch" dock widget: segment every image of a folder into an output folder.

The widget holds no compute: it runs ``napari_sa2net.inference.batch.batch_job`` through the
runner, with the same settings form as the segment widget (:mod:`._settings_form`), and
shows each file's status (queued, running, done, skipped, failed) in a table from the typed
file records the job's progress events carry. Resume skips files already finished; a bad file
is reported and skipped; the summary CSV's location is shown at the end.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QCheckBox, QComboBox, QLineEdit, QProgressBar, QVBoxLayout, QWidget

from ._batch_table import FileTable
from ._controls import AutoSpinBox, PathEdit
from ._form import RunBar, form_group, note
from ._job_panel import JobPanel
from ._settings_form import SettingsForm


class BatchWidget(JobPanel, QWidget):
    """Dock widget for folder-to-folder segmentation with per-file status and resume."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None
        self._started = 0.0
        self.input = PathEdit("folder", "folder with the images")
        self.pattern = QLineEdit("*.tif")
        self.recursive = QCheckBox("include sub-folders")
        self.output = PathEdit("folder", "folder for the labels and the summary CSV")
        self.format = QComboBox()
        self.format.addItem("auto (OME-Zarr above 4096², else TIFF)", "auto")
        self.format.addItem("TIFF labels (.tif)", "tif")
        self.format.addItem("OME-Zarr labels (.zarr)", "zarr")
        self.form = SettingsForm()
        self.model, self.device, self.tile = self.form.model, self.form.device, self.form.tile
        self.channel = AutoSpinBox(64, minimum=0)
        self.resume = QCheckBox("resume: skip files already finished")
        self.resume.setChecked(True)
        self.table = FileTable()
        self.overall = QProgressBar()
        self.overall.setFormat("files %v / %m")
        self.current = QProgressBar()
        self.current.setFormat("this file %p%")
        self.summary = note("")
        self.bar = RunBar("Run batch")
        self._build()
        self.input.changed.connect(self.list_files)
        self.pattern.editingFinished.connect(self.list_files)
        self.recursive.toggled.connect(self.list_files)
        self.bar.run.clicked.connect(self.run)
        self.bar.cancel.clicked.connect(self.cancel)

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setSpacing(6)
        layout.addWidget(form_group("Files", [
            ("Input", self.input, "Every matching image in this folder is segmented."),
            ("Pattern", self.pattern, "Glob pattern, e.g. *.tif or *_DAPI.tiff; ; separates "
             "several."),
            ("", self.recursive, "Also look in sub-folders (outputs keep the sub-folder)."),
            ("Output", self.output, "One label image per input, plus sa2net-summary.csv."),
            ("Format", self.format, "TIFF for small images, OME-Zarr for large ones."),
        ]))  # fmt: skip
        layout.addWidget(form_group("Run", [
            ("Channel", self.channel, "Channel the model sees in multi-channel files; 'auto': "
             "the file's only channel (RGB for a 3-channel model)."),
            ("", self.resume, "Files whose output exists are skipped; a file interrupted "
             "mid-way is redone from scratch."),
        ]))  # fmt: skip
        layout.addWidget(self.form)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.overall)
        layout.addWidget(self.current)
        layout.addWidget(self.summary)
        layout.addWidget(self.bar)

    def patterns(self) -> list[str]:
        """The glob patterns typed by the user (``;`` or ``,`` separated)."""
        text = self.pattern.text().replace(",", ";")
        return [p.strip() for p in text.split(";") if p.strip()] or ["*"]

    def list_files(self, *_: Any) -> None:
        """Fill the table with the files the batch would process (status "queued")."""
        from ..inference.batch import find_images

        folder = self.input.path()
        if folder is None or not folder.is_dir():
            self.table.set_files([], None)
            return
        files = find_images(folder, self.patterns(), recursive=self.recursive.isChecked())
        self.table.set_files(files, folder)
        self.summary.setText(f"{len(files)} files match")

    def job_arguments(self) -> dict[str, Any]:
        """Arguments of ``batch_job`` from the current choices (settings validated now)."""
        folder, out = self.input.path(), self.output.path()
        if folder is None or out is None:
            raise ValueError("choose an input folder and an output folder")
        return {
            "input_dir": folder,
            "output_dir": out,
            "settings": self.form.settings(channel=self.channel.auto_value()),
            "patterns": self.patterns(),
            "recursive": self.recursive.isChecked(),
            "output_format": self.format.currentData(),
            "resume": self.resume.isChecked(),
        }

    def run(self) -> None:
        """Start the batch in a worker thread."""

        from ..inference.batch import batch_job

        arguments = self.job_arguments_or_error("SA2-Net batch")
        if arguments is None:
            return
        self.list_files()
        self.overall.setRange(0, max(1, len(self.table.names())))
        self.overall.setValue(0)
        self.launch(batch_job(**arguments), "SA2-Net batch", self._done)

    def cancel(self) -> None:
        """Stop after the current tile batch; the file in progress leaves no output."""
        self.request_stop()

    def _progress(self, event: Any) -> None:
        if event.level == 0:
            self.table.update_from(event)
            self.overall.setValue(event.current)
            self.current.setValue(0)
        elif event.stage == "tile" and event.total:
            self.current.setRange(0, event.total)
            self.current.setValue(event.current)
        done = f"{event.current}/{event.total}" if event.total else str(event.current)
        self.bar.say(f"{event.stage} {done} {event.message}  ({self.elapsed():.0f} s)")

    def _done(self, result: Any) -> None:
        self.table.update_from_result(result)
        self.current.setValue(self.current.maximum())
        self.summary.setText(f"Summary table: {result.summary_path}")
        self.bar.say(self.table.counts_text())

    def on_aborted(self) -> None:
        self.table.mark_running_as("cancelled")
        self.bar.say("cancelled; tick resume and run again to continue")
