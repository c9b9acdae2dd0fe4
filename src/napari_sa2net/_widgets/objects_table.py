"""The "SA2-Net objects" dock widget: the per-object table of a Labels layer.

It shows the ``features`` of a Labels layer (the table ``measure`` computes: one row per object
and plane, see ``inference.results.ObjectTable``), sortable by any column. Selecting a row
selects that label in the layer, moves the dims slider to its plane and centres the view on
it; clicking an object in the viewer (or picking a label) selects its row. **Export CSV…**
writes the table, atomically. The widget holds no compute: the table comes with the layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ._form import note
from ._layers import LayerCombo

#: Data role the proxy sorts by: the raw number, not its text.
SORT_ROLE = Qt.ItemDataRole.UserRole


class FeaturesModel(QAbstractTableModel):
    """A read-only Qt table over a features table (``dict`` / DataFrame of equal columns)."""

    def __init__(self) -> None:
        super().__init__()
        self.columns: list[str] = []
        self.data_: dict[str, np.ndarray] = {}

    def set_table(self, table: Any) -> None:
        self.beginResetModel()
        self.columns = [c for c in table if c != "index"] if table is not None else []
        self.data_ = {c: np.asarray(table[c]) for c in self.columns}
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return len(self.data_[self.columns[0]]) if self.columns else 0

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return len(self.columns)

    def value(self, row: int, column: str) -> Any:
        return self.data_[column][row].item()

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        value = self.value(index.row(), self.columns[index.column()])
        if role == SORT_ROLE:
            return value
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{value:.4g}" if isinstance(value, float) else str(value)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.columns[section]
        return str(section + 1)


class ObjectsTableWidget(QWidget):
    """Dock widget listing the objects of a Labels layer; see the module docstring."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        from napari.layers import Labels

        self.viewer = napari_viewer
        self.layers = LayerCombo(napari_viewer, Labels)
        self.model = FeaturesModel()
        self.proxy = QSortFilterProxyModel()
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.only = QCheckBox("show only the selected object")
        self.export = QPushButton("Export CSV…")
        self.info = note("")
        self._layer: Any = None
        self._build()
        self.layers.currentIndexChanged.connect(self._on_layer)
        self.table.selectionModel().currentRowChanged.connect(self._on_row)
        self.only.toggled.connect(self._show_only)
        self.export.clicked.connect(self._export_dialog)
        self._on_layer()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.addWidget(self.layers)
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        row.addWidget(self.only)
        row.addWidget(self.export)
        layout.addLayout(row)
        layout.addWidget(self.info)

    # --- the layer and its table ---------------------------------------------------------

    def _on_layer(self, *_: Any) -> None:
        if self._layer is not None:
            self._layer.events.features.disconnect(self._load)
            self._layer.events.selected_label.disconnect(self._on_label)
            if self._on_click in self._layer.mouse_drag_callbacks:
                self._layer.mouse_drag_callbacks.remove(self._on_click)
        self._layer = self.layers.layer()
        if self._layer is not None:
            self._layer.events.features.connect(self._load)
            self._layer.events.selected_label.connect(self._on_label)
            self._layer.mouse_drag_callbacks.append(self._on_click)
        self._load()

    def _load(self, *_: Any) -> None:
        features = None if self._layer is None else self._layer.features
        usable = features is not None and "label" in getattr(features, "columns", [])
        self.model.set_table(features if usable else None)
        self.export.setEnabled(usable)
        self.info.setText(
            _count(features) if usable
            else "No objects table: run SA2-Net segment with 'measure every object'."
        )  # fmt: skip

    def rows(self) -> int:
        return self.model.rowCount()

    # --- selection both ways -------------------------------------------------------------

    def _source_row(self, view_row: int) -> int:
        return self.proxy.mapToSource(self.proxy.index(view_row, 0)).row()

    def _on_row(self, current: QModelIndex, _previous: QModelIndex = QModelIndex()) -> None:  # noqa: B008
        if not current.isValid() or self._layer is None:
            return
        self.go_to(self.proxy.mapToSource(current).row())

    def go_to(self, row: int) -> None:
        """Select the object of table row ``row``: its label, its plane, the view on it."""
        layer, value = self._layer, self.model.value
        layer.selected_label = int(value(row, "label"))
        axes = self._lead_axes()
        point = [float(value(row, a)) if a in self.model.columns else 0.0 for a in axes]
        point += [value(row, "centroid_y"), value(row, "centroid_x")]
        world = np.asarray(layer.data_to_world(point))
        for i in range(len(axes)):
            self.viewer.dims.set_point(self.viewer.dims.ndim - layer.ndim + i, world[i])
        self.viewer.camera.center = tuple(world[-2:])
        self._show_only(self.only.isChecked())

    def _lead_axes(self) -> list[str]:
        """Lower-case letters of the layer's plane axes (``["z"]``), from its provenance."""
        provenance = (self._layer.metadata.get("napari_sa2net") or {}) if self._layer else {}
        if not provenance:
            provenance = (self._layer.metadata.get("metadata") or {}).get("napari_sa2net") or {}
        axes = str(provenance.get("axes") or "TZYX"[-self._layer.ndim :])
        return (
            [a.lower() for a in axes[:-2]][-(self._layer.ndim - 2) :]
            if self._layer.ndim > 2
            else []
        )

    def _on_label(self, *_: Any) -> None:
        """The layer's selected label changed: select its (first) row."""
        if self._layer is None or not self.model.columns:
            return
        rows = np.flatnonzero(self.model.data_["label"] == self._layer.selected_label)
        if not rows.size:
            return
        view = self.proxy.mapFromSource(self.model.index(int(rows[0]), 0))
        if self.table.currentIndex().row() != view.row():
            self.table.selectRow(view.row())

    def _on_click(self, layer: Any, event: Any) -> None:
        if layer.mode != "pan_zoom":
            return
        value = layer.get_value(event.position, view_direction=event.view_direction,
                                dims_displayed=event.dims_displayed, world=True)  # fmt: skip
        value = value[1] if isinstance(value, tuple) else value
        if value:
            layer.selected_label = int(value)

    def _show_only(self, only: bool) -> None:
        if self._layer is not None:
            self._layer.show_selected_label = bool(only)

    # --- export --------------------------------------------------------------------------

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the objects table", "",
                                              "CSV (*.csv)")  # fmt: skip
        if path:
            self.export_csv(path)

    def export_csv(self, path: str) -> str:
        """Write the table (all rows, the table's column order) to ``path`` atomically."""
        from ..io.atomic import atomic_path
        from ..io.object_files import write_objects_csv

        with atomic_path(Path(path), overwrite=True) as partial:
            write_objects_csv(partial, self.model.columns, self.model.data_)
        self.info.setText(f"{self.rows()} objects → {path}")
        return path


__all__ = ["ObjectsTableWidget"]


def _count(features: Any) -> str:
    """ "N objects", or for a stack whose objects span planes "N rows: M objects on P planes"."""
    rows = len(features)
    objects = features["label"].nunique()
    planes = [c for c in ("t", "z") if c in features.columns]
    if objects == rows or not planes:
        return f"{rows} objects"
    return f"{rows} rows: {objects} objects on {len(features[planes].drop_duplicates())} planes"
