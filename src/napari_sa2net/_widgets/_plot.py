"""A tiny live line plot painted with QPainter (no matplotlib, no extra dependency)."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

#: Line colours that read well on napari's dark and light themes.
COLOURS = ("#4fc3f7", "#ffb74d", "#81c784", "#e57373")


class CurvePlot(QWidget):
    """Named series of ``(x, y)`` points drawn as polylines with a legend and y-range labels.

    Used for the finetune loss (per epoch) and validation curves; x is the epoch number.
    """

    def __init__(self, x_label: str = "epoch", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.x_label = x_label
        self.series: dict[str, list[tuple[float, float]]] = {}
        self.setMinimumHeight(120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def add_point(self, name: str, x: float, y: float) -> None:
        """Append one finite point to series ``name`` and repaint."""
        if math.isfinite(x) and math.isfinite(y):
            self.series.setdefault(name, []).append((float(x), float(y)))
            self.update()

    def clear(self) -> None:
        """Remove every series."""
        self.series.clear()
        self.update()

    def _ranges(self) -> tuple[float, float, float, float]:
        points = [p for pts in self.series.values() for p in pts]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(ys), max(ys)
        if x1 == x0:
            x1 = x0 + 1
        if y1 == y0:
            y0, y1 = y0 - 0.5, y1 + 0.5
        return x0, x1, y0, y1

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text = self.palette().windowText().color()
        box = QRectF(self.rect()).adjusted(44, 8, -8, -20)
        grid = QColor(text)
        grid.setAlpha(70)
        painter.setPen(QPen(grid, 1))
        painter.drawRect(box)
        painter.setPen(text)
        if not any(self.series.values()):
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, "the curves appear here")
            return
        x0, x1, y0, y1 = self._ranges()
        painter.drawText(QPointF(2, box.top() + 10), f"{y1:.3g}")
        painter.drawText(QPointF(2, box.bottom()), f"{y0:.3g}")
        painter.drawText(QPointF(box.left(), box.bottom() + 15), f"{self.x_label} {x0:g}")
        right = f"{x1:g}"
        painter.drawText(QPointF(box.right() - 8 * len(right), box.bottom() + 15), right)
        for i, (name, points) in enumerate(self.series.items()):
            colour = QColor(COLOURS[i % len(COLOURS)])
            painter.setPen(QPen(colour, 2))
            line = QPolygonF(
                [
                    QPointF(
                        box.left() + (x - x0) / (x1 - x0) * box.width(),
                        box.bottom() - (y - y0) / (y1 - y0) * box.height(),
                    )
                    for x, y in points
                ]
            )
            painter.drawPolyline(line)
            if len(points) == 1:
                painter.drawEllipse(line[0], 2, 2)
            label = f"{name} {points[-1][1]:.3g}"
            painter.drawText(QPointF(box.left() + 6, box.top() + 14 + 14 * i), label)
