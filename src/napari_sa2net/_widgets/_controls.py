"""Small form controls shared by the widgets: model, device, "auto" spin boxes, paths."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ._session import SESSION_MODELS

BROWSE = "Browse checkpoint…"


class ModelPicker(QComboBox):
    """Bundled models by name, checkpoints saved this session, and "Browse checkpoint…".

    :meth:`model` returns a bundled name (``str``) or a checkpoint ``Path``, as ``load_model`` and
    the core jobs accept. Item data are strings (Qt compares them by value): a bundled name, or
    ``"file:<absolute path>"``.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._browsed: list[Path] = []
        self.setToolTip(
            "Bundled models ship with the plugin; models you finetune in this session and "
            "checkpoints you browse to are listed below them."
        )
        self.activated.connect(self._on_activated)
        SESSION_MODELS.changed.connect(self.refresh)
        self.destroyed.connect(lambda *_: SESSION_MODELS.changed.disconnect(self.refresh))
        self.refresh()

    def refresh(self) -> None:
        """Re-list the models, keeping the current choice."""
        from ..model import DEFAULT_MODEL, list_bundled_models

        current = self.currentData()
        self.blockSignals(True)
        self.clear()
        bundled = list_bundled_models()
        for name in sorted(bundled, key=lambda n: n != DEFAULT_MODEL):
            self.addItem(f"{name} (bundled)", name)
        for path in SESSION_MODELS.paths():
            self.addItem(f"{path.name} (this session)", f"file:{path}")
            self.setItemData(self.count() - 1, str(path), Qt.ItemDataRole.ToolTipRole)
        for path in self._browsed:
            if path not in SESSION_MODELS.paths():
                self.addItem(path.name, f"file:{path}")
                self.setItemData(self.count() - 1, str(path), Qt.ItemDataRole.ToolTipRole)
        self.addItem(BROWSE, None)
        index = self.findData(current) if current is not None else -1
        self.setCurrentIndex(max(index, 0))
        self.blockSignals(False)

    def add_checkpoint(self, path: str | Path) -> None:
        """Add a checkpoint file to the list and select it."""
        path = Path(path).resolve()
        if path not in self._browsed:
            self._browsed.append(path)
        self.refresh()
        self.setCurrentIndex(self.index_of(path))

    def index_of(self, model: str | Path) -> int:
        """Row of a bundled name or checkpoint path, -1 when it is not listed."""
        key = f"file:{Path(model).resolve()}" if isinstance(model, Path) else model
        return self.findData(key)

    def _on_activated(self, index: int) -> None:
        if self.itemData(index) is not None:
            return
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open an SA2-Net checkpoint or bioimage.io package",
            "",
            "SA2-Net models (*.pt *.zip);;All files (*)",
        )
        if path:
            self.add_checkpoint(path)
        else:
            self.setCurrentIndex(0)

    def model(self) -> str | Path | None:
        """The chosen bundled name or checkpoint path; ``None`` when there is none to choose."""
        data = self.currentData()
        if isinstance(data, str) and data.startswith("file:"):
            return Path(data[len("file:") :])
        return data


class DevicePicker(QComboBox):
    """``auto (what it resolves to)`` followed by every device torch can use here."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from ..model import available_devices, resolve_device

        self.addItem(f"auto ({resolve_device('auto')})", "auto")
        for name, description in available_devices():
            self.addItem(f"{name} — {description}", name)
        self.setToolTip("Where the network runs; 'auto' picks CUDA, then Apple MPS, then the CPU.")

    def device(self) -> str:
        """The chosen device string: ``"auto"``, ``"cpu"``, ``"cuda:0"``, ``"mps"``."""
        return str(self.currentData())


class AutoSpinBox(QSpinBox):
    """An integer spin box whose minimum reads "auto" (:meth:`auto_value` gives ``None``).

    With ``multiple``, a typed value that is not a multiple of it is rounded to the nearest one
    when editing ends, so the box never holds a value the engine refuses.
    """

    def __init__(
        self,
        maximum: int,
        step: int = 1,
        minimum: int = 1,
        parent: QWidget | None = None,
        multiple: int = 1,
    ) -> None:
        super().__init__(parent)
        self.multiple = max(1, int(multiple))
        self.setRange(minimum - 1 if minimum > 0 else -1, maximum)
        self.setSingleStep(step)
        self.setSpecialValueText("auto")
        self.setValue(self.minimum())
        self._hint = ""
        self.lineEdit().textEdited.connect(self._mark)
        self.editingFinished.connect(lambda: self._mark(None))

    def _mark(self, text: str | None) -> None:
        """Outline the box in red while the typed text is not a value it will keep."""
        from qtpy.QtGui import QValidator

        shown = self.lineEdit().text() if text is None else text
        state = self.validate(shown, len(shown))[0]
        wrong = text is not None and state != QValidator.State.Acceptable
        if not wrong:
            self.setStyleSheet("")
            self.setToolTip(self._hint)
            return
        self._hint = self._hint or self.toolTip()
        self.setStyleSheet("QSpinBox { border: 1px solid #e0533d; }")
        kept = self.fixup(shown)
        self.setToolTip(f"{shown!r} is not kept: becomes {kept} when you leave the box")

    def invalid(self) -> bool:
        """Whether the box is marked: what was typed is not a value it will keep."""
        return bool(self.styleSheet())

    def validate(self, text: str, pos: int):
        from qtpy.QtGui import QValidator

        state, text, pos = super().validate(text, pos)[:3]
        if state == QValidator.State.Acceptable and self.multiple > 1:
            value = self.valueFromText(text)
            if value != self.minimum() and value % self.multiple:
                state = QValidator.State.Intermediate  # fixed up when editing ends
        return state, text, pos

    def stepBy(self, steps: int) -> None:
        """Arrows and the wheel move between multiples only (from "auto" to the smallest)."""
        if self.multiple == 1:
            return super().stepBy(steps)
        if self.value() == self.minimum():
            target = self.minimum() + 1 if steps > 0 else self.minimum()
        else:
            target = self.value() + steps * self.singleStep()
        if target > self.minimum():
            target = -(-target // self.multiple) * self.multiple
        self.setValue(max(self.minimum(), min(self.maximum(), target)))

    def fixup(self, text: str) -> str:
        try:
            value = int(text.strip() or self.minimum())
        except ValueError:
            return super().fixup(text)
        value = max(self.minimum() + 1, round(value / self.multiple) * self.multiple)
        return str(min(value, self.maximum()))

    def auto_value(self) -> int | None:
        """The value, or ``None`` when "auto" is shown."""
        return None if self.value() == self.minimum() else int(self.value())


class PathEdit(QWidget):
    """A line edit with a "…" button opening a folder or file dialog."""

    changed = Signal(str)

    def __init__(
        self,
        mode: str = "folder",
        placeholder: str = "",
        file_filter: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.mode = mode
        self.file_filter = file_filter
        self.edit = QLineEdit(self)
        self.edit.setPlaceholderText(placeholder)
        self.edit.textChanged.connect(self.changed)
        button = QPushButton("…", self)
        button.setFixedWidth(28)
        button.setToolTip("Choose with a dialog")
        button.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit)
        layout.addWidget(button)

    def _browse(self) -> None:
        start = self.edit.text()
        if self.mode == "folder":
            path = QFileDialog.getExistingDirectory(self, "Choose a folder", start)
        elif self.mode == "save":
            path, _ = QFileDialog.getSaveFileName(self, "Save as", start, self.file_filter)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Open", start, self.file_filter)
        if path:
            self.edit.setText(path)

    def path(self) -> Path | None:
        """The entered path (``~`` expanded), or ``None`` when empty."""
        text = self.edit.text().strip()
        return Path(text).expanduser() if text else None

    def set_path(self, path: str | Path) -> None:
        """Show ``path`` in the line edit."""
        self.edit.setText(str(path))
