"""Layout helpers: titled form groups and a Run / Cancel button row with a status line."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)


def form_group(title: str, rows: list[tuple[str, QWidget, str]]) -> QGroupBox:
    """A group box with one labelled row per ``(label, widget, tooltip)``."""
    box = QGroupBox(title)
    form = QFormLayout(box)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
    form.setContentsMargins(8, 6, 8, 6)
    form.setVerticalSpacing(4)
    for label, widget, tip in rows:
        if tip:
            widget.setToolTip(tip)
        if label:
            form.addRow(label, widget)
        else:
            form.addRow(widget)
    return box


class RunBar(QWidget):
    """A primary action button, a Cancel button and a word-wrapped status line."""

    def __init__(self, run_text: str, cancel_text: str = "Cancel") -> None:
        super().__init__()
        self.run = QPushButton(run_text)
        self.run.setDefault(True)
        self.cancel = QPushButton(cancel_text)
        self.cancel.setEnabled(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run, 2)
        buttons.addWidget(self.cancel, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.status)

    def busy(self, running: bool) -> None:
        """Enable Cancel while a job runs, the primary button otherwise."""
        self.run.setEnabled(not running)
        self.cancel.setEnabled(running)

    def say(self, text: str) -> None:
        """Show ``text`` on the status line."""
        self.status.setText(text)


class _VerticalScroll(QScrollArea):
    """Scrolls up and down only: as wide as its content needs, however short the dock."""

    def minimumSizeHint(self):
        hint = super().minimumSizeHint()
        content = self.widget()
        if content is not None:
            width = content.minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width()
            hint.setWidth(max(hint.width(), width))
        return hint


def scrolling(outer: QVBoxLayout) -> QVBoxLayout:
    """A vertical layout inside a scroll area added to ``outer``: tall forms scroll in a short
    dock instead of being squeezed (wrapped labels lost their last lines)."""
    area = _VerticalScroll()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    inner = QWidget()
    layout = QVBoxLayout(inner)
    layout.setSpacing(6)
    area.setWidget(inner)
    outer.addWidget(area, 1)
    return layout


def note(text: str) -> QLabel:
    """A small, word-wrapped, dimmed hint label."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: gray; font-size: 11px;")
    return label
