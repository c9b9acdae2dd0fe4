"""The "SA2-Net finetune" dock widget: adapt a model to nuclei painted in a few regions.

The user paints nuclei into a Labels layer over an image and marks the annotated regions with
rectangles on a Shapes layer (without one, the engine uses the painted objects' bounding boxes
plus a margin). The widget collects the arrays lazily and runs
``napari_sa2net.engine.finetune_job`` through the runner; it shows a live loss / validation
curve and a preview layer, and registers the saved checkpoint for the segment widget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ._controls import DevicePicker, ModelPicker, PathEdit
from ._export import ExportButton
from ._finetune_io import default_checkpoint_path, finetune_arguments, finetune_from, show_preview
from ._form import RunBar, form_group, note
from ._job_panel import JobPanel
from ._layers import LayerCombo
from ._plot import CurvePlot
from ._session import SESSION_MODELS
from ._triton_guard import block_triton_after_mesa

NO_SHAPES = "(around painted nuclei)"


class FinetuneWidget(JobPanel, QWidget):
    """Dock widget finetuning SA2-Net on painted regions, with a live curve and preview."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        from napari.layers import Image, Labels, Shapes

        self.viewer = napari_viewer
        self.worker: Any = None
        self._started = 0.0
        self._suggested = ""
        self._out = Path()
        self.image = LayerCombo(napari_viewer, Image)
        self.labels = LayerCombo(napari_viewer, Labels)
        self.regions = _ShapesCombo(napari_viewer, Shapes)
        self.model = ModelPicker()
        self.device = DevicePicker()
        self.length = QSpinBox()
        self.length.setRange(1, 100_000)
        self.length.setValue(20)
        self.unit = QComboBox()
        self.unit.addItems(["epochs", "minutes"])
        self.steps = QSpinBox()
        self.steps.setRange(1, 10_000)
        self.steps.setValue(10)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 1e-1)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(3e-4)
        self.freeze = QCheckBox("freeze encoder (fewer annotations, faster)")
        self.freeze.setChecked(True)
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.0, 0.5)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setValue(0.2)
        self.output = PathEdit("save", "where the new checkpoint is saved", "Checkpoints (*.pt)")
        self.plot = CurvePlot("epoch")
        self.bar = RunBar("Start", "Stop")
        self.export_button = ExportButton(self._export_source, self.bar.say)
        self._build()
        self.image.currentIndexChanged.connect(self._suggest_output)
        self.bar.run.clicked.connect(self.start)
        self.bar.cancel.clicked.connect(self.stop)
        self._suggest_output()

    def _build(self) -> None:
        length = QWidget()
        row = QHBoxLayout(length)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.length, 2)
        row.addWidget(self.unit, 1)
        layout = QVBoxLayout(self)
        layout.setSpacing(6)
        layout.addWidget(form_group("Annotations", [
            ("Image", self.image, "The image the nuclei were painted on."),
            ("Labels", self.labels, "Painted nuclei: one id per nucleus, 0 = background."),
            ("Regions", self.regions, "Rectangles around the areas you annotated completely; "
             "unpainted pixels inside are background, pixels outside are ignored."),
            ("", note("Paint every nucleus inside each region; leave the rest of the image "
                      "unpainted."), ""),
        ]))  # fmt: skip
        layout.addWidget(form_group("Training", [
            ("Start from", self.model, ""),
            ("Device", self.device, ""),
            ("Train for", length, "Number of epochs, or a time budget in minutes."),
            ("Steps / epoch", self.steps, "Batches of random crops per epoch; the curve gets "
             "a point and the preview refreshes after each epoch."),
            ("Learning rate", self.lr, "Adam step size; 1e-4 to 1e-3 suits finetuning."),
            ("", self.freeze, "Keep the pretrained encoder (and its norm statistics) fixed."),
            ("Validation", self.val_fraction, "Fraction of the regions held out to pick the "
             "best epoch (at least one region when there are two or more)."),
            ("Save as", self.output, "The best checkpoint is written here (atomically)."),
        ]))  # fmt: skip
        layout.addWidget(self.plot)
        layout.addWidget(self.bar)
        layout.addWidget(self.export_button)
        layout.addStretch(1)

    def _suggest_output(self, *_: Any) -> None:
        """Propose a checkpoint path for the image unless the user typed their own."""
        if self.output.edit.text() in ("", self._suggested):
            layer = self.image.layer()
            self._suggested = str(default_checkpoint_path(layer.name if layer else "model"))
            self.output.set_path(self._suggested)

    def job_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``finetune_job`` from the current choices."""
        return finetune_arguments(self)

    def start(self) -> None:
        """Start finetuning in a worker thread."""
        arguments = self.job_arguments_or_error("SA2-Net finetune")
        if arguments is None:
            return
        block_triton_after_mesa()  # the optimizer would load triton's LLVM next to Mesa's
        self._out = Path(arguments["out"])
        self.plot.clear()
        job = finetune_from(**arguments)
        self.launch(job, "SA2-Net finetune", self._done, "preparing the painted regions…")

    def stop(self) -> None:
        """Stop after the current batch; the best checkpoint saved so far is kept."""
        self.request_stop("stopping…")

    def _progress(self, event: Any) -> None:
        metrics = dict(event.metrics)
        if event.stage == "epoch" and event.level == 0:
            for name, value in metrics.items():
                if name == "loss" or name.startswith("val"):
                    self.plot.add_point(name, event.current, value)
        if getattr(event, "preview", None) is not None and self.image.layer() is not None:
            show_preview(self.viewer, event, self.image.layer())
        done = f"{event.current}/{event.total}" if event.total else str(event.current)
        shown = "  ".join(f"{k} {v:.3g}" for k, v in metrics.items())
        self.bar.say(f"{event.stage} {done}  {shown}  ({self.elapsed():.0f} s)")

    def _done(self, result: Any) -> None:
        best = f"best epoch {result.best_epoch}: " + ", ".join(
            f"{k} {v:.3g}" for k, v in result.best_metrics.items()
        )
        self._register(Path(result.out or self._out), f"{best}; saved")

    def _export_source(self) -> str | Path | None:
        """The checkpoint this widget saved, else the model it starts from."""
        return self._out if self._out.is_file() else self.model.model()

    def _register(self, path: Path, verb: str) -> None:
        if path.is_file():
            SESSION_MODELS.add(path)
            self.bar.say(f"{verb} {path}; it is now in the segment widget's model list")

    def on_aborted(self) -> None:
        self.bar.say("stopped; no checkpoint was saved yet")
        self._register(self._out, "stopped; kept the best checkpoint so far:")


class _ShapesCombo(LayerCombo):
    """Shapes layers plus a first entry meaning "bounding boxes of the painted nuclei"."""

    def refresh(self, event: Any = None) -> None:
        super().refresh(event)
        self.blockSignals(True)
        if self.findText(NO_SHAPES) < 0:
            self.insertItem(0, NO_SHAPES)
        if event is None and self.currentIndex() != 0 and not self.currentText():
            self.setCurrentIndex(0)
        self.blockSignals(False)

    def layer(self) -> Any | None:
        return None if self.currentText() == NO_SHAPES else super().layer()
