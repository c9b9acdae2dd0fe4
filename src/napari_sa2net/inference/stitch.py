"""Link the per-plane objects of a Z-stack into 3-D objects by their overlap, chunk by chunk.

The rule is Cellpose's ``stitch_threshold`` (``cellpose.utils.stitch3D``): going up the
stack, each object of plane ``z + 1`` takes the id of the object of plane ``z`` it overlaps
best, where their IoU is at least the threshold and plane ``z``'s object has no better
partner in ``z + 1``; every other object gets a new id. Ids stay ``1..N``, in order of first
appearance. The overlaps are counted chunk by chunk over the two planes and the new ids
written back chunk by chunk, so no plane (let alone the stack) is held whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _blocks(shape: tuple[int, int], chunk: int):
    for y in range(0, shape[0], chunk):
        for x in range(0, shape[1], chunk):
            yield (slice(y, min(y + chunk, shape[0])), slice(x, min(x + chunk, shape[1])))


def _counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids, counts = np.unique(values, return_counts=True)
    return ids, counts


def overlaps(labels: Any, below: tuple, above: tuple, chunk: int,
             check: Callable[[], None]) -> tuple[dict, dict, np.ndarray]:  # fmt: skip
    """Pixel counts of every id of both planes and of every overlapping pair.

    Returns ``(area_below, area_above, pairs)`` with ``pairs`` ``K×3`` ``(below id, above id,
    shared pixels)``.
    """
    area_a: dict[int, int] = {}
    area_b: dict[int, int] = {}
    pair_parts = []
    for window in _blocks(labels.shape[-2:], chunk):
        check()
        a = np.asarray(labels[below + window]).astype(np.uint64)
        b = np.asarray(labels[above + window]).astype(np.uint64)
        for area, plane in ((area_a, a), (area_b, b)):
            for i, n in zip(*_counts(plane[plane > 0])):
                area[int(i)] = area.get(int(i), 0) + int(n)
        both = (a > 0) & (b > 0)
        codes, shared = _counts((a[both] << np.uint64(32)) | b[both])
        pair_parts.append(np.stack([codes >> np.uint64(32), codes & np.uint64(2**32 - 1),
                                    shared.astype(np.uint64)], 1))  # fmt: skip
    pairs = np.concatenate(pair_parts) if pair_parts else np.zeros((0, 3), np.uint64)
    if len(pairs):  # a pair seen in several chunks: add its counts
        keys, inverse = np.unique(pairs[:, :2], axis=0, return_inverse=True)
        total = np.bincount(inverse.ravel(), weights=pairs[:, 2].astype(np.float64))
        pairs = np.column_stack([keys, total.astype(np.uint64)])
    return area_a, area_b, pairs.astype(np.int64)


def links(area_a: dict, area_b: dict, pairs: np.ndarray, threshold: float) -> dict[int, int]:
    """``above id -> below id`` for the pairs Cellpose's rule stitches (see the module)."""
    if not len(pairs):
        return {}
    a, b, shared = pairs[:, 0], pairs[:, 1], pairs[:, 2].astype(np.float64)
    union = np.array([area_a[i] for i in a.tolist()]) + np.array([area_b[i] for i in b.tolist()])
    iou = shared / (union - shared)
    good = iou >= threshold
    a, b, iou = a[good], b[good], iou[good]
    # each below object keeps only its best partner(s) above
    best_of_a = {}
    for i, v in zip(a.tolist(), iou.tolist()):
        best_of_a[i] = max(best_of_a.get(i, 0.0), v)
    keep = np.array([v >= best_of_a[i] for i, v in zip(a.tolist(), iou.tolist())], bool)
    a, b, iou = a[keep], b[keep], iou[keep]
    # each above object takes its best remaining partner below (lowest id on ties, as argmax)
    order = np.lexsort((a, -iou, b))
    chosen: dict[int, int] = {}
    for k in order.tolist():
        chosen.setdefault(int(b[k]), int(a[k]))
    return chosen


def relabel(labels: Any, plane: tuple, lut: np.ndarray, base: int, chunk: int,
            check: Callable[[], None]) -> None:  # fmt: skip
    """Write ``lut[id - base]`` over every object pixel of ``plane``, chunk by chunk."""
    for window in _blocks(labels.shape[-2:], chunk):
        check()
        block = np.asarray(labels[plane + window])
        if block.any():
            shifted = np.where(block > 0, block.astype(np.int64) - base, 0)
            labels[plane + window] = np.where(block > 0, lut[shifted], 0).astype(block.dtype)


def stitch_plane(labels: Any, below: tuple | None, above: tuple, ids: tuple[int, int],
                 next_id: int, threshold: float, chunk: int = 1024,
                 check: Callable[[], None] = lambda: None) -> int:  # fmt: skip
    """Give plane ``above`` its stitched ids; returns the largest id used so far.

    Parameters
    ----------
    labels : array-like
        The label stack (numpy or zarr; written in place).
    below, above : tuple of int
        Leading indices of the plane below (``None``: none, e.g. the first Z of a time point)
        and of the plane to relabel.
    ids : (int, int)
        ``above``'s ids before stitching: ``first..last`` (consecutive, stack-unique).
    next_id : int
        The largest id given so far; unlinked objects get ``next_id + 1, ...``.
    threshold : float
        Smallest IoU that links two objects.
    """
    first, last = ids
    if last < first:
        return next_id
    linked = {}
    if below is not None:
        area_a, area_b, pairs = overlaps(labels, below, above, chunk, check)
        linked = links(area_a, area_b, pairs, threshold)
    start = next_id
    lut = np.zeros(last - first + 2, np.int64)
    for old in range(first, last + 1):
        if old in linked:
            lut[old - first + 1] = linked[old]
        else:
            next_id += 1
            lut[old - first + 1] = next_id
    if linked or first != start + 1:  # else every id keeps its value
        relabel(labels, above, lut, first - 1, chunk, check)
    return next_id
