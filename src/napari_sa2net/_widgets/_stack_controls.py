"""Form controls for stacks and outputs: which planes, Z stitching, measurements, exports."""

from __future__ import annotations

from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLineEdit, QWidget

ALL, CURRENT, ONE = "all", "current", "one"


class PlaneChoice(QWidget):
    """Every plane of a stack, the viewer's current plane (segment widget) or one named plane.

    :meth:`plane` gives the ``plane`` setting (``None`` for every plane, else the typed text:
    ``"3"``, ``"Z=3"``); :meth:`mode` says which of the three is chosen.
    """

    def __init__(self, current: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.addItem("every plane", ALL)
        if current:
            self.combo.addItem("current plane", CURRENT)
        self.combo.addItem("one plane:", ONE)
        self.text = QLineEdit()
        self.text.setPlaceholderText("Z=3, T=0 or an index")
        self.text.setEnabled(False)
        self.combo.currentIndexChanged.connect(lambda *_: self.text.setEnabled(self.mode() == ONE))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.text, 1)

    def mode(self) -> str:
        return str(self.combo.currentData())

    def set_mode(self, mode: str) -> None:
        self.combo.setCurrentIndex(max(0, self.combo.findData(mode)))

    def plane(self) -> str | None:
        """The ``plane`` setting: ``None`` (every plane / the current one) or the typed text."""
        text = self.text.text().strip()
        return text or "" if self.mode() == ONE else None


def stitch_box() -> QDoubleSpinBox:
    """Z-stitching IoU: "off" at 0, else the smallest overlap that links two planes' objects."""
    box = QDoubleSpinBox()
    box.setRange(0.0, 1.0)
    box.setSingleStep(0.05)
    box.setDecimals(2)
    box.setSpecialValueText("off")
    box.setValue(0.0)
    return box


class ExportChoice(QWidget):
    """Check boxes for the QuPath GeoJSON and the ImageJ ROI set."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.geojson = QCheckBox("QuPath GeoJSON")
        self.imagej = QCheckBox("ImageJ ROIs")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.geojson)
        layout.addWidget(self.imagej)

    def export(self) -> tuple[str, ...]:
        chosen = (("geojson", self.geojson), ("imagej", self.imagej))
        return tuple(name for name, box in chosen if box.isChecked())
