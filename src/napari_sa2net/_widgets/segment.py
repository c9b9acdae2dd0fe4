"""The "SA2-Net segment" dock widget: pick an image layer and a model, run tiled inference.

The widget holds no compute: it collects the choices into validated ``SegmentSettings`` (the
same form the batch widget uses, :mod:`._settings_form`), builds
``napari_sa2net.inference.segment_job(image, settings)`` and hands it to
:func:`._runner.start_job`. What the scan skipped as empty background appears as a translucent
layer (:mod:`._background`). On the engine's disk path (images above 4096², or any image
written to a folder) a Labels layer
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

import numpy as np
from qtpy.QtWidgets import QComboBox, QVBoxLayout, QWidget

from ._background import show_skipped
from ._controls import PathEdit
from ._form import RunBar, form_group, note, scrolling
from ._job_panel import JobPanel
from ._layers import LayerCombo, layer_channels
from ._preview import LivePreview
from ._segment_output import describe_layer, output_target, replace_preview, result_name
from ._settings_form import SettingsForm
from ._stack_controls import CURRENT
from ._stack_input import job_image, layer_axes
from ._stack_layer import StackView, place_current_plane, set_features


class SegmentWidget(JobPanel, QWidget):
    """Dock widget running SA2-Net on an image layer and adding the instance labels."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        from napari.layers import Image

        self.viewer = napari_viewer
        self.worker: Any = None
        self._started = 0.0
        self._preview: LivePreview | None = None
        self._layer: Any = None  # the layer being segmented
        self._stack: StackView | None = None  # the labels of a run over several planes
        self._picked: tuple[int, ...] = ()  # the current plane segmented alone
        self.image = LayerCombo(napari_viewer, Image)
        self.channel = QComboBox()
        self.info = note("")
        self.form = SettingsForm(current_plane=True)
        form = self.form  # its controls, under the names the widget has always had
        self.model, self.device, self.tile, self.overlap = (
            form.model,
            form.device,
            form.tile,
            form.overlap,
        )
        self.batch, self.chunk, self.estimate = form.batch, form.chunk, form.estimate
        self.interior, self.foreground = form.interior, form.foreground
        self.min_size, self.diameter = form.min_size, form.diameter
        self.skip_background = form.skip_background
        self.output = PathEdit("folder", "in memory; a temporary folder for huge images")
        self.bar = RunBar("Run")
        self._build()
        self.image.currentIndexChanged.connect(self._on_image)
        self.bar.run.clicked.connect(self.run)
        self.bar.cancel.clicked.connect(self.cancel)
        self._on_image()

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        layout = scrolling(outer)  # a short window scrolls the form instead of squeezing it
        layout.addWidget(form_group("Input", [
            ("Image", self.image, "The image layer to segment (2-D, RGB, a Z-stack or "
             "time-lapse: every plane or the current one, under Planes)."),
            ("Channel", self.channel, "Which channel(s) the model sees."),
            ("", self.info, ""),
        ]))  # fmt: skip
        layout.addWidget(self.form)
        layout.addWidget(form_group("Output", [
            ("Folder", self.output, "Large results are written here as OME-Zarr and opened "
             "lazily; leave empty to keep small results in memory."),
        ]))  # fmt: skip
        layout.addStretch(1)
        outer.addWidget(self.bar)  # Run / Cancel and the status always in sight

    def _on_image(self, *_: Any) -> None:
        layer = self.image.layer()
        self.channel.clear()
        if layer is None:
            self.info.setText("Open an image (File > Open, or File > Open Sample > SA2-Net).")
            self.bar.run.setEnabled(False)
            return
        channels, names = layer_channels(layer), ("red", "green", "blue", "alpha")
        try:
            found = layer_axes(layer)
        except ValueError:  # a layer of many dimensions: its axes are asked for at Run
            found = None
        if found is not None and "C" in found.axes and not layer.rgb:  # a channel axis
            channels = int(layer.data.shape[found.axes.index("C")])
            names = found.channel_names or tuple(f"channel {i}" for i in range(channels))
        if channels > 1:
            if layer.rgb:
                self.channel.addItem(f"all {channels} (RGB)", None)
            for index, name in enumerate(names[:channels]):
                self.channel.addItem(f"{index}: {name}", index)
        else:
            self.channel.addItem("single channel", None)
        self.channel.setEnabled(channels > 1)
        self.info.setText(describe_layer(layer))
        self.bar.run.setEnabled(self.worker is None)

    def job_arguments(self) -> dict[str, Any]:
        """``{"image": lazy data, "settings": SegmentSettings, "plane": index}`` for the job.

        Every plane (or the one named) of a stack layer, or its current plane (``plane`` is
        then its index along the layer's leading axes, else empty).
        """
        layer = self.image.layer()
        if layer is None:
            raise ValueError("no image layer: open an image first")
        mode = self.form.planes.mode()
        image, axes, picked = job_image(layer, self.viewer, every_plane=mode != CURRENT)
        if self.form.exports.export() and self.output.path() is None:
            raise ValueError("the exports are written beside the labels: choose an output folder")
        pixels = int(np.prod([n for a, n in zip(axes, image.shape) if a != "C"]))  # of the labels
        out = output_target(self.output.path(), layer.name, pixels)
        extra = {"axes": axes} if not self.form.axes.text().strip() else {}
        settings = self.form.settings(channel=self.channel.currentData(), out=out, **extra)
        return {"image": image, "settings": settings, "plane": picked}

    def run(self) -> None:
        """Start segmenting the chosen layer in a worker thread."""
        from ..inference import segment_job

        arguments = self.job_arguments_or_error("SA2-Net segment")
        if arguments is None:
            return
        layer = self._layer = self.image.layer()
        self._picked = arguments["plane"]
        job = segment_job(arguments["image"], arguments["settings"])
        if layer_axes(layer).is_stack and not self._picked:  # planes fill in one by one
            self._stack = StackView(self.viewer, layer, result_name(layer))
        else:
            # A pyramid from 1024² on, so each refresh reads only what is on screen (a 6144²
            # single level was read whole: ~0.1-1 s per refresh on the GUI thread). A written
            # result is a pyramid too and goes into the same layer; in-memory labels (one
            # level) replace it.
            name = f"{result_name(layer)} (preview)"
            self._preview = LivePreview(self.viewer, layer, name, multiscale=True)
            job = self._preview.wrap(job)
        self.launch(job, "SA2-Net segment", lambda r: self._done(r, layer))

    def cancel(self) -> None:
        """Stop the running job at its next tile batch; its partial output is removed."""
        self.request_stop()

    def _progress(self, event: Any) -> None:
        from ..inference.results import BackgroundMap, PlaneDone

        if isinstance(event.payload, BackgroundMap) and self._layer in self.viewer.layers:
            show_skipped(self.viewer, self._layer, event.payload)
        if isinstance(event.payload, PlaneDone) and self._stack is not None:
            self._stack.on_plane(event.payload)
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
        count = result.n_objects
        if self._stack is not None:
            labels_layer = self._stack.finish(result)
            self._stack = None
        else:
            preview = self._preview.layer if self._preview and self._preview.alive() else None
            labels_layer, count = replace_preview(self.viewer, preview, result, layer)
            if self._preview is not None:
                self._preview.close(remove_layer=False)
            if self._picked:  # the current plane: shown on its plane only, others empty
                labels_layer = place_current_plane(self.viewer, labels_layer, layer, self._picked)
            set_features(labels_layer, result)
        seconds = self.elapsed()
        objects = "1 object" if count == 1 else f"{count} objects"
        plan = getattr(result, "plan", None)
        skipped = getattr(plan, "tiles_skipped", 0)
        total = skipped + getattr(plan, "tiles_predicted", 0)
        empty = f"; {skipped} of {total} tiles were empty background" if skipped else ""
        self.bar.say(f"{objects} in {seconds:.1f} s → layer '{labels_layer.name}'{empty}")

    def on_aborted(self) -> None:
        self.bar.say("cancelled; no output was kept")

    def _job_finished(self) -> None:
        # Done, cancelled or failed: the job's own clean-up has run. A preview still showing
        # (cancel, error) is removed, and its store deleted.
        if self._preview is not None:
            self._preview.close(remove_layer=True)
            self._preview = None
        if self._stack is not None:  # cancelled or failed: no labels of it stay
            self._stack.discard()
            self._stack = None
        super()._job_finished()


__all__ = ["SegmentWidget"]
