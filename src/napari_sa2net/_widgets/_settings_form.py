"""The segmentation settings as a form, shared by the segment and batch widgets.

Every field of :class:`~napari_sa2net.inference.settings.SegmentSettings` a user chooses has one
control here, the same ones ``sa2net segment`` / ``sa2net batch`` offer as flags: model and
device; tile, overlap, batch, chunk and background skipping; seed and foreground thresholds,
minimum size and diameter; planes of a stack, Z stitching and axes; measurements and exports;
autocast and a dask scheduler. :meth:`SettingsForm.settings` builds
the validated settings (a bad value is a ``SettingError``, shown as one line, before any job).
Size boxes only hold multiples of 16 (or "auto").
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLineEdit,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ._controls import AutoSpinBox, DevicePicker, ModelPicker
from ._form import form_group, note
from ._stack_controls import ExportChoice, PlaneChoice, stitch_box

OVERLAP_TIP = "Pixels shared by neighbouring tiles; 'auto' derives it from the network's reach."
SKIP_TIP = (
    "Tiles of empty background (glass: only camera noise, judged against the image's own noise) "
    "are neither read again nor predicted; a layer shows what was skipped."
)


def _threshold(value: float, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.01, 0.99)
    box.setSingleStep(0.05)
    box.setDecimals(2)
    box.setValue(value)
    box.setToolTip(tip)
    return box


class SettingsForm(QWidget):
    """Model, tiling, object and advanced settings of a segmentation run.

    Parameters
    ----------
    objects : bool
        Show the object settings (thresholds, minimum size, diameter).
    current_plane : bool
        Offer "current plane" among the plane choices (the segment widget, which knows it).
    """

    def __init__(self, objects: bool = True, current_plane: bool = False) -> None:
        super().__init__()
        self.planes = PlaneChoice(current=current_plane)
        self.stitch = stitch_box()
        self.axes = QLineEdit()
        self.axes.setPlaceholderText("from the file")
        self.measure = QCheckBox("measure every object (table)")
        self.exports = ExportChoice()
        self.model = ModelPicker()
        self.device = DevicePicker()
        self.tile = AutoSpinBox(8192, step=64, minimum=64, multiple=16)
        self.overlap = AutoSpinBox(1024, step=16, minimum=0, multiple=16)
        self.batch = AutoSpinBox(256)
        self.chunk = AutoSpinBox(16384, step=256, minimum=64, multiple=16)
        self.skip_background = QCheckBox("skip empty background")
        self.skip_background.setChecked(True)
        self.estimate = note("Tile, overlap and batch are chosen from the free memory.")
        # A wrapped label in a form gets one line's height unless it may grow (Qt's
        # height-for-width): the plan's estimate was cut after two lines.
        self.estimate.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.interior = _threshold(
            0.5, "Interior probability (or, for a model with a centre map, the centre value) "
            "that starts an object."
        )  # fmt: skip
        self.foreground = _threshold(0.5, "Probability above which a pixel is nucleus.")
        self.min_size = AutoSpinBox(100_000, step=8, minimum=0)
        self.min_size.setSuffix(" px")
        self.diameter = AutoSpinBox(400, step=1, minimum=4)
        self.diameter.setSuffix(" px")
        self.amp = QComboBox()
        for text, value in (("auto (on with CUDA)", None), ("on", True), ("off", False)):
            self.amp.addItem(text, value)
        self.tta = QComboBox()
        for text, value in (("off", 1), ("2 flips", 2), ("4 flips", 4), ("8 (flips + turns)", 8)):
            self.tta.addItem(text, value)
        self.denoise = QComboBox()
        for text, value in (("auto (low-light images)", "auto"), ("off", None), ("1 px", 1.0),
                            ("1.5 px", 1.5), ("2 px", 2.0)):  # fmt: skip
            self.denoise.addItem(text, value)
        self.flatten = QComboBox()
        for text, value in (("auto (uneven lighting)", "auto"), ("on", True), ("off", False)):
            self.flatten.addItem(text, value)
        self.scheduler = QLineEdit()
        self.scheduler.setPlaceholderText("local threads; or tcp://host:8786 (trusted only)")
        self._build(objects)

    def _build(self, objects: bool) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(form_group("Model", [
            ("Model", self.model, ""),
            ("Device", self.device, ""),
        ]))  # fmt: skip
        layout.addWidget(form_group("Tiling", [
            ("Tile", self.tile, "Tile side in pixels; 'auto' fits the device memory."),
            ("Overlap", self.overlap, OVERLAP_TIP),
            ("Batch", self.batch, "Tiles per forward pass; 'auto' fits the device memory."),
            ("Chunk", self.chunk, "Edge of the pipeline's chunks (the live preview fills in "
             "chunk by chunk); 'auto': 1024 on a CPU, 2048+ on a GPU."),
            ("", self.skip_background, SKIP_TIP),
            ("", self.estimate, ""),
        ]))  # fmt: skip
        if objects:
            layout.addWidget(form_group("Objects", [
                ("Seed threshold", self.interior, ""),
                ("Foreground", self.foreground, ""),
                ("Min size", self.min_size, "Objects with fewer pixels are removed; 'auto': a "
                 "fifth of the area of the image's typical nucleus as measured (else the "
                 "model's: 111 px for the bundled model). Objects cut by the image's edge "
                 "are kept down to a quarter of it."),
                ("Diameter", self.diameter, "Typical nucleus diameter in this image; the image "
                 "is rescaled to the size the model was trained on. 'auto': measured on a "
                 "sample of the image first, and rescaled only when far from that size."),
                ("Denoise", self.denoise, "Smooth the image by a Gaussian of this many pixels "
                 "before the model, for photon-starved (noisy) images. 'auto': 1 px when the "
                 "image's own noise is at least 4 % of its range, else none."),
                ("Flatten", self.flatten, "Subtract the background of uneven illumination "
                 "(vignetting, haze) before the model. 'auto': only where it varies by at "
                 "least 30 % of the image's range. Off for fields of touching nuclei wider "
                 "than about five nuclei."),
            ]))  # fmt: skip
        layout.addWidget(form_group("Stacks and outputs", [
            ("Planes", self.planes, "Z-stacks and time-lapses: segment every plane (the labels "
             "keep the image's Z / T axes), or one."),
            ("Stitch Z", self.stitch, "Link objects of neighbouring Z planes that overlap by at "
             "least this IoU into one 3-D object (one id through Z); 'off' keeps per-plane ids."),
            ("", self.measure, "Area, centroid, box, intensity and shape of every object: "
             "NAME_objects.csv beside the labels, the layer's features and the objects table."),
            ("Export", self.exports, "NAME.geojson (QuPath: File > Import objects) and "
             "NAME_rois.zip (Fiji's ROI Manager) beside the labels; needs an output folder."),
        ]))  # fmt: skip
        layout.addWidget(form_group("Advanced", [
            ("Autocast", self.amp, "bf16/fp16 autocast on CUDA GPUs."),
            ("Test-time aug.", self.tta, "Average the probabilities of flipped / turned copies "
             "of every tile: smoother objects, that many times slower."),
            ("Scheduler", self.scheduler, "A dask.distributed scheduler address to run on a "
             "cluster; its workers must see the output folder."),
            ("Axes", self.axes, "The image's axes (ZYX, TCYX, ...) when its file does not say "
             "them right."),
        ]))  # fmt: skip

    def settings(self, **extra: Any) -> Any:
        """The validated :class:`SegmentSettings` of the form, with ``extra`` fields."""
        from ..inference.settings import SegmentSettings

        model = self.model.model()
        if model is None:
            raise ValueError("no model: pick a bundled model or browse to a checkpoint (.pt)")
        return SegmentSettings(
            model=model,
            device=self.device.device(),
            tile=self.tile.auto_value(),
            overlap=self.overlap.auto_value(),
            batch_size=self.batch.auto_value(),
            chunk=self.chunk.auto_value(),
            skip_background=self.skip_background.isChecked(),
            interior_threshold=self.interior.value(),
            foreground_threshold=self.foreground.value(),
            min_size=self.min_size.auto_value(),
            diameter=self.diameter.auto_value() or "auto",
            amp=self.amp.currentData(),
            tta=self.tta.currentData(),
            denoise=self.denoise.currentData(),
            flatten=self.flatten.currentData(),
            scheduler=self.scheduler.text().strip() or None,
            **self.stack_settings() | extra,
        )

    def stack_settings(self) -> dict[str, Any]:
        """The ``plane``, ``axes``, ``stitch_z``, ``measure`` and ``export`` fields."""
        return {
            "plane": self.planes.plane(),
            "axes": self.axes.text().strip() or None,
            "stitch_z": self.stitch.value() or None,
            "measure": self.measure.isChecked(),
            "export": self.exports.export(),
        }
