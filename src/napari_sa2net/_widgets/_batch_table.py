"""The batch widget's file table: one row per input file with its status, objects and time."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

COLUMNS = ("File", "Status", "Objects", "Seconds")
STATUS_COLOURS = {
    "done": "#81c784",
    "skipped": "#90a4ae",
    "failed": "#e57373",
    "running": "#4fc3f7",
    "cancelled": "#ffb74d",
}


#: How the table words a file record's status.
SHOWN = {"segmenting": "running"}


class FileTable(QTableWidget):
    """Rows keyed by the file's path relative to the input folder."""

    def __init__(self) -> None:
        super().__init__(0, len(COLUMNS))
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.setMinimumHeight(140)
        self._rows: dict[str, int] = {}

    def set_files(self, files: list[Path], root: Path | None) -> None:
        """Show ``files`` (relative to ``root``) as queued."""
        self.setRowCount(0)
        self._rows.clear()
        for path in files:
            name = path.relative_to(root).as_posix() if root is not None else path.name
            row = self.rowCount()
            self.insertRow(row)
            self.setItem(row, 0, QTableWidgetItem(name))
            self._rows[name] = row
            self.set_status(name, "queued")

    def names(self) -> list[str]:
        """File names in table order."""
        return list(self._rows)

    def status(self, name: str) -> str:
        """The shown status of file ``name``."""
        return self.item(self._rows[name], 1).text()

    def set_status(
        self, name: str, status: str, objects: Any = None, seconds: Any = None, tip: str = ""
    ) -> None:
        """Set one row's status (coloured), object count and seconds."""
        row = self._rows.get(name)
        if row is None:
            return
        item = QTableWidgetItem(status)
        if status in STATUS_COLOURS:
            item.setForeground(QColor(STATUS_COLOURS[status]))
        item.setToolTip(tip)
        self.setItem(row, 1, item)
        for column, value, fmt in ((2, objects, "{:.0f}"), (3, seconds, "{:.1f}")):
            if value is not None and value == value:  # skip NaN
                cell = QTableWidgetItem(fmt.format(float(value)))
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(row, column, cell)

    def update_from(self, event: Any) -> None:
        """Apply one level-0 batch event: its ``payload`` is the file's ``FileRecord``."""
        record = getattr(event, "payload", None)
        if record is None or not hasattr(record, "status"):
            return
        status = SHOWN.get(record.status, record.status)
        seconds = record.seconds if record.status != "segmenting" else None
        self.set_status(
            record.file, status, record.objects, seconds, record.error or event.message
        )

    def update_from_result(self, result: Any) -> None:
        """Apply the final per-file records of a batch result (rows of the summary)."""
        for record in result.files:
            if record.file in self._rows:
                self.set_status(
                    record.file, record.status, record.objects, record.seconds, record.error
                )

    def mark_running_as(self, status: str) -> None:
        """Re-label every row still "running" (after a cancel)."""
        for name in self._rows:
            if self.status(name) == "running":
                self.set_status(name, status)

    def counts_text(self) -> str:
        """``"3 done, 1 failed, 2 skipped"``."""
        counts = Counter(self.status(name) for name in self._rows)
        return ", ".join(f"{n} {status}" for status, n in counts.most_common()) or "no files"
