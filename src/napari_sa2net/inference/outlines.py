"""Outlines of label objects along pixel edges: polygons whose area is the object's pixel count.

A pixel ``(row, column)`` covers ``[column, column + 1) × [row, row + 1)`` in pixel
coordinates (x right, y down, from the image's top-left corner), as QuPath and ImageJ count
them, so an outline through pixel corners rasterizes back to exactly the object's pixels.
Each 4-connected part of an object gives one outer ring and one ring per hole; two parts that
touch only at a corner stay two polygons (a valid MultiPolygon, no self-touching ring).
"""

from __future__ import annotations

import numpy as np

Polygon = list[np.ndarray]  # [outer ring, *holes], each N×2 int (x, y), not closed


def _edges(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed boundary edges (start, end corner as (x, y)) and the pixel each belongs to.

    Outer rings run clockwise on screen (right along the top, down the right side), holes
    the other way round: the object is always on the right of the direction of travel.
    """
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1]
    starts, ends, owners = [], [], []
    # (neighbour, start corner offset, end corner offset) in (dx, dy) from the pixel's corner
    sides = (
        (padded[:-2, 1:-1], (0, 0), (1, 0)),  # top: rightwards
        (padded[1:-1, 2:], (1, 0), (1, 1)),  # right: downwards
        (padded[2:, 1:-1], (1, 1), (0, 1)),  # bottom: leftwards
        (padded[1:-1, :-2], (0, 1), (0, 0)),  # left: upwards
    )
    for neighbour, start, end in sides:
        rows, cols = np.nonzero(inner & ~neighbour)
        starts.append(np.stack([cols + start[0], rows + start[1]], 1))
        ends.append(np.stack([cols + end[0], rows + end[1]], 1))
        owners.append(np.stack([rows, cols], 1))
    return np.concatenate(starts), np.concatenate(ends), np.concatenate(owners)


def _chain(starts: np.ndarray, ends: np.ndarray, owners: np.ndarray) -> list[list[int]]:
    """Rings as lists of edge indices; at a corner two parts share, stay with the same pixel."""
    leaving: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(starts.tolist()):
        leaving.setdefault((x, y), []).append(i)
    used = np.zeros(len(starts), bool)
    rings = []
    for first in range(len(starts)):
        if used[first]:
            continue
        ring, edge = [], first
        while not used[edge]:
            used[edge] = True
            ring.append(edge)
            options = leaving[tuple(ends[edge].tolist())]
            if len(options) > 1:  # two pixels touch only at this corner: keep to this pixel
                options = [o for o in options if (owners[o] == owners[edge]).all()]
            edge = options[0]
        rings.append(ring)
    return rings


def _corners(points: np.ndarray) -> np.ndarray:
    """The ring without the vertices in the middle of straight runs."""
    before, after = np.roll(points, 1, 0), np.roll(points, -1, 0)
    turn = (points - before)[:, 0] * (after - points)[:, 1] - (points - before)[:, 1] * (
        after - points
    )[:, 0]
    return points[turn != 0]


def signed_area(ring: np.ndarray) -> float:
    """Shoelace area of a ring in (x, y), y down: positive for outer rings here."""
    x, y = ring[:, 0].astype(np.float64), ring[:, 1].astype(np.float64)
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def outline(mask: np.ndarray) -> list[Polygon]:
    """Polygons of a ``Y×X`` boolean mask: one per 4-connected part, largest first.

    Returns
    -------
    list of list of numpy.ndarray
        Per part ``[outer, *holes]``, each ring ``N×2`` int corners ``(x, y)`` in the mask's
        pixel coordinates, without the closing vertex.
    """
    from scipy import ndimage as ndi

    mask = np.asarray(mask, bool)
    if not mask.any():
        return []
    parts, _ = ndi.label(mask)  # 4-connected: parts touching at a corner are separate
    starts, ends, owners = _edges(mask)
    polygons: dict[int, Polygon] = {}
    holes: list[tuple[int, np.ndarray]] = []
    for ring in _chain(starts, ends, owners):
        points = _corners(starts[ring])
        part = int(parts[tuple(owners[ring[0]])])
        if signed_area(points) > 0:
            polygons[part] = [points, *polygons.get(part, [None])[1:]]
        else:
            holes.append((part, points))
    for part, points in holes:
        polygons[part].append(points)
    return sorted(polygons.values(), key=lambda p: -signed_area(p[0]))
