"""Per-object measurements and outlines, chunk by chunk with the global ids.

A slide is never read as one array. Two passes over each plane's labels, chunk by chunk:

1. every object's bounding box (the union of its boxes in the chunks it touches);
2. per chunk, the objects whose box starts in it (each object has exactly one such chunk):
   the window holding all their boxes is read once (labels and image), the other objects
   in it are masked out, and scikit-image's ``regionprops_table`` measures them. Objects
   crossing chunk edges are measured whole, so every property (shape ones included) is the
   same as on the whole image; boxes are small (nuclei), windows barely larger than chunks.

The same pass traces each object's outline (:mod:`.outlines`) for the GeoJSON / ImageJ
exports, handed to ``on_object`` as the object is measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._progress import Job, Progress
from .results import ObjectTable

#: Sentinel of the box arrays: no pixel of that id seen yet.
NONE = np.iinfo(np.int64).max
SHAPE = ("eccentricity", "solidity", "perimeter")


@dataclass(frozen=True)
class PlaneInput:
    """One plane to measure: where it lies in the label stack and its image.

    Attributes
    ----------
    lead : tuple of int
        Index into the labels' leading axes (``()`` for a 2-D image).
    position : dict of str to int
        Index along each plane axis, lower-case letters (``{"z": 2}``); empty for 2-D.
    image : array-like or None
        The plane's ``Y×X×C`` image for intensities (dask or numpy), ``None`` to skip them.
    """

    lead: tuple[int, ...]
    position: dict[str, int]
    image: Any


#: ``on_object(label, position, polygons, row)``: an object was measured and outlined.
OnObject = Callable[[int, dict[str, int], list, dict[str, float]], None]


def _blocks(shape: tuple[int, int], chunk: int):
    for y in range(0, shape[0], chunk):
        for x in range(0, shape[1], chunk):
            yield y, min(y + chunk, shape[0]), x, min(x + chunk, shape[1])


def _boxes(labels: Any, chunk: int, max_id: int, check: Callable[[], None]) -> np.ndarray:
    """``(max_id + 1) × 4`` boxes ``y0, y1, x0, x1`` of every id (``NONE`` when absent)."""
    from scipy import ndimage as ndi

    boxes = np.full((max_id + 1, 4), NONE, np.int64)
    boxes[:, 1::2] = -1
    for y0, y1, x0, x1 in _blocks(labels.shape[-2:], chunk):
        check()
        block = np.asarray(labels[y0:y1, x0:x1])
        ids, inverse = np.unique(block, return_inverse=True)
        background = ids[0] == 0  # find_objects counts from 1, with 0 as background
        found = ndi.find_objects(inverse.reshape(block.shape) + (0 if background else 1))
        for value, box in zip(ids[1:] if background else ids, found):
            row = boxes[value]
            row[0] = min(row[0], box[0].start + y0)
            row[1] = max(row[1], box[0].stop + y0)
            row[2] = min(row[2], box[1].start + x0)
            row[3] = max(row[3], box[1].stop + x0)
    return boxes


def _columns(position: dict[str, int], channels: int, pixel_size: Any) -> tuple[str, ...]:
    axes = tuple(sorted(position, key="tz".find))
    area = ("area_px", "area_um2") if pixel_size is not None else ("area_px",)
    suffixes = [""] if channels == 1 else [f"_c{c}" for c in range(channels)]
    intensity = tuple(f"{kind}_intensity{s}" for s in suffixes
                      for kind in ("mean", "max", "integrated"))  # fmt: skip
    box = ("bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1")
    return ("label", *axes, *area, "centroid_y", "centroid_x", *box, *intensity, *SHAPE)


def _measure_window(labels: np.ndarray, image: Any, origin: tuple[int, int],
                    pixel_size: Any) -> dict[str, np.ndarray]:  # fmt: skip
    """``regionprops_table`` of a window, in the table's column names and global pixels."""
    from skimage.measure import regionprops_table

    properties = ["label", "area", "centroid", "bbox", *SHAPE]
    intensity = None
    if image is not None:
        intensity = image[..., 0] if image.shape[-1] == 1 else image
        properties += ["intensity_mean", "intensity_max"]
    raw = regionprops_table(labels, intensity, properties=properties)
    y, x = origin
    out = {"label": raw["label"].astype(np.int64), "area_px": raw["area"].astype(np.int64)}
    if pixel_size is not None:
        out["area_um2"] = raw["area"] * float(pixel_size[0]) * float(pixel_size[1])
    out["centroid_y"], out["centroid_x"] = raw["centroid-0"] + y, raw["centroid-1"] + x
    for i, (name, shift) in enumerate(zip(("y0", "x0", "y1", "x1"), (y, x, y, x))):
        out[f"bbox_{name}"] = raw[f"bbox-{i}"].astype(np.int64) + shift
    if image is not None:
        channels = 1 if intensity.ndim == 2 else intensity.shape[-1]
        for c in range(channels):
            key, suffix = ("", "") if channels == 1 else (f"-{c}", f"_c{c}")
            mean = raw[f"intensity_mean{key}"].astype(np.float64)
            out[f"mean_intensity{suffix}"] = mean
            out[f"max_intensity{suffix}"] = raw[f"intensity_max{key}"].astype(np.float64)
            out[f"integrated_intensity{suffix}"] = mean * raw["area"]
    for name in SHAPE:
        out[name] = raw[name].astype(np.float64)
    return out


def _owned_groups(boxes: np.ndarray, chunk: int) -> list[np.ndarray]:
    """Ids grouped by the chunk their box starts in, in raster order of the chunks."""
    present = np.flatnonzero(boxes[:, 1] >= 0)
    present = present[present > 0]
    if not present.size:
        return []
    keys = (boxes[present, 0] // chunk) * (1 << 32) + boxes[present, 2] // chunk
    order = np.argsort(keys, kind="stable")
    present, keys = present[order], keys[order]
    cuts = np.flatnonzero(np.diff(keys)) + 1
    return np.split(present, cuts)


def _plane_rows(labels: Any, plane: PlaneInput, boxes: np.ndarray, chunk: int,
                pixel_size: Any, on_object: OnObject | None,
                check: Callable[[], None]) -> list[dict[str, np.ndarray]]:  # fmt: skip
    """Pass 2 of one plane: the rows of every object, window by window."""
    parts = []
    keep = np.zeros(len(boxes), bool)
    for owned in _owned_groups(boxes, chunk):
        check()
        b = boxes[owned]
        y0, y1, x0, x1 = b[:, 0].min(), b[:, 1].max(), b[:, 2].min(), b[:, 3].max()
        window = np.asarray(labels[y0:y1, x0:x1])
        keep[owned] = True
        masked = np.where(keep[window], window, 0)
        keep[owned] = False
        image = None if plane.image is None else np.asarray(plane.image[y0:y1, x0:x1])
        rows = _measure_window(masked, image, (int(y0), int(x0)), pixel_size)
        for axis, index in plane.position.items():
            rows[axis] = np.full(len(rows["label"]), index, np.int64)
        if on_object is not None:
            _outline_objects(masked, rows, (int(y0), int(x0)), plane.position, on_object)
        parts.append(rows)
    return parts


def _outline_objects(window: np.ndarray, rows: dict[str, np.ndarray], origin: tuple[int, int],
                     position: dict[str, int], on_object: OnObject) -> None:  # fmt: skip
    from .outlines import outline

    y, x = origin
    for k, label in enumerate(rows["label"]):
        by0, bx0 = rows["bbox_y0"][k] - y, rows["bbox_x0"][k] - x
        by1, bx1 = rows["bbox_y1"][k] - y, rows["bbox_x1"][k] - x
        polygons = outline(window[by0:by1, bx0:bx1] == label)
        shift = np.array([bx0 + x, by0 + y])
        polygons = [[ring + shift for ring in polygon] for polygon in polygons]
        row = {name: float(values[k]) for name, values in rows.items()}
        on_object(int(label), position, polygons, row)


def measure_job(
    labels: Any,
    planes: Sequence[PlaneInput],
    *,
    max_id: int,
    chunk: int = 1024,
    pixel_size: tuple[float, float] | None = None,
    on_object: OnObject | None = None,
    check: Callable[[], None] = lambda: None,
) -> Job[ObjectTable]:
    """Measure (and outline) every object of every plane, chunk by chunk.

    Parameters
    ----------
    labels : array-like
        ``[T×][Z×]Y×X`` integer labels supporting window reads (numpy, zarr, dask).
    planes : sequence of PlaneInput
        The planes to measure, with their images.
    max_id : int
        The largest id in ``labels``.
    chunk : int
        Edge of the chunks read in each pass.
    pixel_size : (float, float), optional
        ``(y, x)`` µm; adds ``area_um2``.
    on_object : callable, optional
        Called with each object's outline polygons (see :mod:`.outlines`, image pixel
        coordinates) and row, as it is measured.
    check : callable
        Raises to stop (a cancelled job); called once per chunk.

    Yields
    ------
    Progress
        Level-1 ``"measure"`` events, one per plane and pass.

    Returns
    -------
    ObjectTable
    """
    parts: list[dict[str, np.ndarray]] = []
    channels = 1
    for k, plane in enumerate(planes):
        plane_labels = labels[plane.lead] if plane.lead else labels
        yield Progress("measure", 2 * k, 2 * len(planes), 1, "measuring objects")
        boxes = _boxes(plane_labels, chunk, max_id, check)
        yield Progress("measure", 2 * k + 1, 2 * len(planes), 1, "measuring objects")
        parts += _plane_rows(plane_labels, plane, boxes, chunk, pixel_size, on_object, check)
        channels = 1 if plane.image is None else int(plane.image.shape[-1])
    yield Progress("measure", 2 * len(planes), 2 * len(planes), 1, "measuring objects")
    return _table(parts, planes, channels, pixel_size)


def _table(parts: list[dict[str, np.ndarray]], planes: Sequence[PlaneInput], channels: int,
           pixel_size: Any) -> ObjectTable:  # fmt: skip
    position = planes[0].position if planes else {}
    columns = _columns(position, channels, pixel_size)
    if planes and planes[0].image is None:
        columns = tuple(c for c in columns if "intensity" not in c)
    if not parts:
        return ObjectTable(columns, {c: np.zeros(0) for c in columns})
    data = {c: np.concatenate([p[c] for p in parts]) for c in columns}
    axes = columns[1 : 1 + len(position)]  # t before z: lexsort's last key sorts first
    order = np.lexsort((data["label"], *(data[a] for a in reversed(axes))))
    return ObjectTable(columns, {c: v[order] for c, v in data.items()})
