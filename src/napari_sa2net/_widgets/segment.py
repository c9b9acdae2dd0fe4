"""The "SA2-Net segment" dock widget: pick an image layer and a model, run tiled inference.

The widget holds no compute: it collects the choices, builds
``napari_sa2net.inference.segment_job(...)`` and hands it to :func:`._runner.start_job`. On the
engine's chunked path (images above 4096², or any image written to a folder) a Labels layer
"<image> labels (preview)" appears over the image as soon as prediction starts and fills in
chunk by chunk (:mod:`._preview`); at the end it takes the final instance labels (in place
when both are pyramids, as written results read lazily are, or both one level; else the final
layer takes its place and settings). A cancelled or failed run removes it.

Images up to 4096² are predicted in memory and get no preview: routed through the chunked path
(a temporary zarr output) a 4096² image with the automatic 1024² tiles showed its first chunk
only after about half the run and took ~15 % longer (2-core CPU, bundled model: 172 s vs
148 s in memory), so the progress bar serves those runs better.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QVBoxLayout, QWidget

from ._controls import AutoSpinBox, DevicePicker, ModelPicker, PathEdit
from ._form import RunBar, form_group, note
from ._job_panel import JobPanel
from ._layers import LayerCombo, current_plane, layer_channels
from ._preview import LivePreview
from ._segment_output import describe_layer, output_target, replace_preview, result_name

OVERLAP_TIP = "Pixels shared by neighbouring tiles; 'auto' derives it from the network's reach."


class SegmentWidget(JobPanel, QWidget):
    """Dock widget running SA2-Net on an image layer and adding the instance labels."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        from napari.layers import Image

        self.viewer = napari_viewer
        self.worker: Any = None
        self._started = 0.0
        self._preview: LivePreview | None = None
        self.image = LayerCombo(napari_viewer, Image)
        self.channel = QComboBox()
        self.info = note("")
        self.model = ModelPicker()
        self.device = DevicePicker()
        self.tile = AutoSpinBox(8192, step=64, minimum=64)
        self.overlap = AutoSpinBox(1024, step=16, minimum=0)
        self.batch = AutoSpinBox(256)
        self.estimate = note("Tile, overlap and batch are chosen from the free memory.")
        self.interior = _threshold(0.5)
        self.foreground = _threshold(0.5)
        self.min_size = AutoSpinBox(100_000, step=8, minimum=0)
        self.min_size.setSuffix(" px")
        self.diameter = AutoSpinBox(400, step=1, minimum=4)
        self.diameter.setSuffix(" px")
        self.output = PathEdit("folder", "in memory; a temporary folder for huge images")
        self.bar = RunBar("Run")
        self._build()
        self.image.currentIndexChanged.connect(self._on_image)
        self.bar.run.clicked.connect(self.run)
        self.bar.cancel.clicked.connect(self.cancel)
        self._on_image()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setSpacing(6)
        layout.addWidget(form_group("Input", [
            ("Image", self.image, "The image layer to segment (2-D, RGB, or the current plane)."),
            ("Channel", self.channel, "Which channel(s) the model sees."),
            ("", self.info, ""),
        ]))  # fmt: skip
        layout.addWidget(form_group("Model", [
            ("Model", self.model, ""),
            ("Device", self.device, ""),
        ]))  # fmt: skip
        layout.addWidget(form_group("Tiling", [
            ("Tile", self.tile, "Tile side in pixels; 'auto' fits the device memory."),
            ("Overlap", self.overlap, OVERLAP_TIP),
            ("Batch", self.batch, "Tiles per forward pass; 'auto' fits the device memory."),
            ("", self.estimate, ""),
        ]))  # fmt: skip
        layout.addWidget(form_group("Objects", [
            ("Seed threshold", self.interior, "Interior probability that starts an object."),
            ("Foreground", self.foreground, "Probability above which a pixel is nucleus."),
            ("Min size", self.min_size, "Objects with fewer pixels are removed; 'auto' uses the "
             "model's default."),
            ("Diameter", self.diameter, "Typical nucleus diameter in this image; the image is "
             "rescaled to the size the model was trained on. 'auto': no rescaling."),
        ]))  # fmt: skip
        layout.addWidget(form_group("Output", [
            ("Folder", self.output, "Large results are written here as OME-Zarr and opened "
             "lazily; leave empty to keep small results in memory."),
        ]))  # fmt: skip
        layout.addWidget(self.bar)
        layout.addStretch(1)

    def _on_image(self, *_: Any) -> None:
        layer = self.image.layer()
        self.channel.clear()
        if layer is None:
            self.info.setText("Open an image (File > Open, or File > Open Sample > SA2-Net).")
            self.bar.run.setEnabled(False)
            return
        channels = layer_channels(layer)
        if channels > 1:
            self.channel.addItem(f"all {channels} (RGB)", None)
            for index, name in enumerate(("red", "green", "blue", "alpha")[:channels]):
                self.channel.addItem(f"{index}: {name}", index)
        else:
            self.channel.addItem("single channel", None)
        self.channel.setEnabled(channels > 1)
        self.info.setText(describe_layer(layer))
        self.bar.run.setEnabled(self.worker is None)

    def job_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``segment_job`` from the current choices."""
        layer = self.image.layer()
        if layer is None:
            raise ValueError("no image layer: open an image first")
        image, _ = current_plane(layer, self.viewer)
        model = self.model.model()
        if model is None:
            raise ValueError("no model: pick a bundled model or browse to a checkpoint (.pt)")
        out = output_target(self.output.path(), layer.name, image.shape)
        return {
            "image": image,
            "model": model,
            "channel": self.channel.currentData(),
            "device": self.device.device(),
            "tile": self.tile.auto_value(),
            "overlap": self.overlap.auto_value(),
            "batch_size": self.batch.auto_value(),
            "interior_threshold": self.interior.value(),
            "foreground_threshold": self.foreground.value(),
            "min_size": self.min_size.auto_value(),
            "diameter": self.diameter.auto_value(),
            "out": out,
            "chunk": self._preview_chunk(),
        }

    def _preview_chunk(self) -> int | None:
        """The engine's CPU chunk for the chosen tile and overlap (small: the preview fills in
        every 1024²); ``None`` on accelerators, which keep the engine's larger chunks."""
        from ..inference.sizing import default_chunk
        from ..model import resolve_device

        if resolve_device(self.device.device()).type != "cpu":
            return None
        return default_chunk("cpu", self.tile.auto_value() or 0, self.overlap.auto_value() or 0)

    def run(self) -> None:
        """Start segmenting the chosen layer in a worker thread."""
        from ..inference import segment_job

        arguments = self.job_arguments_or_error("SA2-Net segment")
        if arguments is None:
            return
        layer = self.image.layer()
        # A pyramid from 1024² on, so each refresh reads only what is on screen (a 6144² single
        # level was read whole: ~0.1-1 s per refresh on the GUI thread). A written result is a
        # pyramid too and goes into the same layer; in-memory labels (one level) replace it.
        name = f"{result_name(layer)} (preview)"
        self._preview = LivePreview(self.viewer, layer, name, multiscale=True)
        job = self._preview.wrap(segment_job(**arguments))
        self.launch(job, "SA2-Net segment", lambda r: self._done(r, layer))

    def cancel(self) -> None:
        """Stop the running job at its next tile batch; its partial output is removed."""
        self.request_stop()

    def _progress(self, event: Any) -> None:
        if self._preview is not None:
            self._preview.on_event(event)
        if event.message and event.level == 0:
            self.estimate.setText(event.message)
        done = f"{event.current}/{event.total}" if event.total else str(event.current)
        shown = (
            f", {self._preview.chunks} chunks shown"
            if self._preview and self._preview.chunks
            else ""
        )
        self.bar.say(f"{event.stage} {done}  ({self.elapsed():.0f} s{shown})")

    def _done(self, result: Any, layer: Any) -> None:
        preview = self._preview.layer if self._preview and self._preview.alive() else None
        labels_layer, count = replace_preview(self.viewer, preview, result, layer)
        if self._preview is not None:
            self._preview.close(remove_layer=False)
        seconds = self.elapsed()
        objects = "1 object" if count == 1 else f"{count} objects"
        self.bar.say(f"{objects} in {seconds:.1f} s → layer '{labels_layer.name}'")

    def on_aborted(self) -> None:
        self.bar.say("cancelled; no output was kept")

    def _job_finished(self) -> None:
        # Done, cancelled or failed: the job's own clean-up has run. A preview still showing
        # (cancel, error) is removed, and its store deleted.
        if self._preview is not None:
            self._preview.close(remove_layer=True)
            self._preview = None
        super()._job_finished()


def _threshold(value: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.01, 0.99)
    box.setSingleStep(0.05)
    box.setDecimals(2)
    box.setValue(value)
    return box


__all__ = ["SegmentWidget"]
