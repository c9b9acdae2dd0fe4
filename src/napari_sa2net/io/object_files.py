"""Per-object files written beside the labels: the objects CSV, QuPath GeoJSON, ImageJ ROI sets.

Each writer streams into a partial path the caller got from :func:`.atomic.atomic_path`, so a
slide's polygons are written object by object and never held together; the caller renames
all outputs into place at the end. Formats:

- ``NAME_objects.csv``: one header row, one row per object (numbers; empty = unknown).
- ``NAME.geojson``: a GeoJSON ``FeatureCollection`` as QuPath reads and writes it (File >
  Import objects): per object a ``Feature`` whose ``geometry`` is a ``Polygon`` (or
  ``MultiPolygon``) in pixel coordinates, x right and y down, from the image's top-left
  corner, vertices on pixel corners; ``properties.objectType`` ``"detection"``, its
  measurements under ``properties.measurements`` and, for stacks, QuPath's ``plane`` (``{"c":
  -1, "z": Z, "t": T}``) beside the coordinates.
- ``NAME_rois.zip``: one ImageJ ``.roi`` per object (roifile's :class:`ImagejRoi`, a traced
  polygon on pixel corners), as Fiji's ROI Manager opens it.
"""

from __future__ import annotations

import csv
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def write_objects_csv(path: Path, columns: Sequence[str], data: Mapping[str, Any]) -> Path:
    """Write the objects table (``data[column]`` arrays of one length) as CSV at ``path``."""
    arrays = [np.asarray(data[c]) for c in columns]
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in zip(*arrays):
            writer.writerow([_cell(v) for v in row])
    return Path(path)


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else f"{float(value):.10g}"
    return str(value.item() if isinstance(value, np.generic) else value)


def read_objects_table(path: str | Path) -> dict[str, np.ndarray]:
    """An objects CSV as columns (int / float / str arrays; empty cells are NaN)."""
    with open(path, newline="") as table:
        rows = list(csv.reader(table))
    if not rows:
        return {}
    header, body = rows[0], rows[1:]
    columns = {}
    for i, name in enumerate(header):
        cells = [r[i] if i < len(r) else "" for r in body]
        columns[name] = _column(cells)
    return columns


def _column(cells: list[str]) -> np.ndarray:
    for kind in (int, float):
        try:
            values = [kind(c) if c != "" else (math.nan if kind is float else None) for c in cells]
        except ValueError:
            continue
        if None not in values:
            return np.asarray(values, dtype=np.int64 if kind is int else np.float64)
    return np.asarray(cells, dtype=object)


class GeoJsonWriter:
    """Streams QuPath detections into a GeoJSON ``FeatureCollection`` at ``path``."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "w")  # noqa: SIM115 (open for the writer's lifetime)
        self._file.write('{"type": "FeatureCollection", "features": [\n')
        self._first = True
        self.count = 0

    def add(self, rings: list[list[np.ndarray]], measurements: Mapping[str, float],
            name: str, plane: Mapping[str, int] | None = None) -> None:  # fmt: skip
        """One detection: ``rings`` = polygons, each ``[outer, *holes]`` of ``N×2`` (x, y)."""
        polygons = [[_ring(r) for r in polygon] for polygon in rings]
        if len(polygons) == 1:
            geometry: dict[str, Any] = {"type": "Polygon", "coordinates": polygons[0]}
        else:
            geometry = {"type": "MultiPolygon", "coordinates": polygons}
        if plane is not None:
            geometry["plane"] = {"c": -1, "z": int(plane.get("z", 0)), "t": int(plane.get("t", 0))}
        feature = {
            "type": "Feature",
            "geometry": geometry,
            "properties": {
                "objectType": "detection",
                "name": name,
                "isLocked": False,
                "measurements": {k: _number(v) for k, v in measurements.items()},
            },
        }
        self._file.write(("" if self._first else ",\n") + json.dumps(feature))
        self._first = False
        self.count += 1

    def close(self) -> None:
        self._file.write("\n]}\n")
        self._file.close()

    def abort(self) -> None:
        self._file.close()


def _ring(points: np.ndarray) -> list[list[float]]:
    """A closed GeoJSON ring (first vertex repeated last), numbers as plain ints / floats."""
    ring = [[_number(x), _number(y)] for x, y in points]
    return ring + ring[:1]


def _number(value: Any) -> float | int | None:
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return value


class RoiZipWriter:
    """Streams ImageJ ROIs (``.roi`` entries) into a ROI Manager zip at ``path``."""

    def __init__(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.count = 0

    def add(self, outline: np.ndarray, name: str, position: Mapping[str, int] | None = None):
        """One traced polygon: ``outline`` ``N×2`` (x, y) integer pixel corners.

        ``position``: ``{"position": i}`` (0-based plane of a plain stack) or ``{"z": .., "t":
        ..}`` (0-based hyperstack position).
        """
        self._zip.writestr(f"{name}.roi", traced_roi(outline, name, position).tobytes())
        self.count += 1

    def close(self) -> None:
        self._zip.close()

    def abort(self) -> None:
        self._zip.close()


def traced_roi(outline: np.ndarray, name: str, position: Mapping[str, int] | None = None) -> Any:
    """An ImageJ traced polygon ROI (what ImageJ's wand makes) through pixel corners."""
    from roifile import ROI_TYPE, ImagejRoi

    position = dict(position or {})
    roi = ImagejRoi.frompoints(np.asarray(outline, np.int32), name=name, **position)
    roi.roitype = ROI_TYPE.TRACED
    # frompoints sizes the box for pixel centres (max + 1); corners already end at the edge
    roi.right, roi.bottom = (
        roi.left + int(np.ptp(outline[:, 0])),
        roi.top + int(np.ptp(outline[:, 1])),
    )
    return roi
