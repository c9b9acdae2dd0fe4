"""Connected components with globally unique ids, joined from per-chunk labels in bounded memory.

Each chunk is labelled on its own (:func:`.maps.label_components`: local ids in raster order,
sizes, boxes, first pixels, the ids along its edges). :func:`join` then finds the local ids that
touch across chunk faces (8-connectivity, from the edge lines alone, no map is read again),
merges them with a sparse connected-components pass and numbers the global components in the
raster order of their first pixel, so the ids do not depend on the chunking at all: the same
image cut into other chunks gives the same ids as one whole-image ``scipy.ndimage.label``. Only
per-component tables (a few integers each) are held whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .maps import Components, label_components
from .merger import Chunking


@dataclass
class GlobalIds:
    """Global ids of per-chunk labels: ``lut[offsets[i, j] + local]`` (``0`` = none).

    ``sizes``, ``boxes`` (``y0, y1, x0, x1``) and ``keys`` (flat index of the first pixel) are
    indexed by global id; index 0 is unused.
    """

    chunking: Chunking
    offsets: np.ndarray
    counts: np.ndarray
    lut: np.ndarray
    sizes: np.ndarray
    boxes: np.ndarray
    keys: np.ndarray

    @property
    def count(self) -> int:
        return int(self.sizes.size - 1)

    def chunk_lut(self, i: int, j: int, n: int) -> np.ndarray:
        """Lookup local id -> global id for chunk ``(i, j)`` with ``n`` local ids (0 -> 0)."""
        start = int(self.offsets[i, j])
        return np.concatenate([[0], self.lut[start + 1 : start + n + 1]]).astype(np.uint32)

    def of_block(self, block: np.ndarray, i: int, j: int) -> np.ndarray:
        """Global ids of a chunk's local label block (codes above its local count are 0)."""
        out = np.zeros(block.shape, np.uint32)
        flat = block.ravel()
        where = np.flatnonzero(flat)  # mostly background: look up the labelled pixels only
        codes = flat[where].astype(np.int64)
        known = codes <= self.counts[i, j]
        out.ravel()[where[known]] = self.lut[codes[known] + self.offsets[i, j]]
        return out

    def window(self, local: Any, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Global ids of ``[y0:y1, x0:x1]`` of a local-label array (numpy or zarr)."""
        block = np.asarray(local[y0:y1, x0:x1])
        out = np.zeros(block.shape, np.uint32)
        rows, cols = self.chunking.touching(y0, y1, x0, x1)
        for i in rows:  # each chunk the window overlaps, with that chunk's offset
            cy0, cy1 = max(y0, self.chunking.ys[i]), min(y1, self.chunking.ys[i + 1])
            for j in cols:
                cx0, cx1 = max(x0, self.chunking.xs[j]), min(x1, self.chunking.xs[j + 1])
                part = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
                out[part] = self.of_block(block[part], i, j)
        return out

    def drop_small(self, min_size: int) -> GlobalIds:
        """Remove components with fewer than ``min_size`` pixels; renumber 1..N in order."""
        keep = self.sizes >= max(1, min_size)
        keep[0] = False
        renumber = np.zeros(self.sizes.size, np.uint32)
        renumber[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
        index = np.concatenate([[0], np.flatnonzero(keep)])
        return GlobalIds(
            self.chunking,
            self.offsets,
            self.counts,
            renumber[self.lut],
            self.sizes[index],
            self.boxes[index],
            self.keys[index],
        )


def _line(parts: list[Components], side: int) -> np.ndarray:
    return np.concatenate([p.edges[side] for p in parts])


def _offset_line(line: np.ndarray, lengths: list[int], offsets: list[int]) -> np.ndarray:
    per_pixel = np.repeat(np.asarray(offsets, np.int64), lengths)
    return np.where(line > 0, line.astype(np.int64) + per_pixel, 0)


def _touching(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairs ``(a[k], b[k + d])`` for ``d`` in -1, 0, 1 where both are labelled."""
    out = []
    for d in (-1, 0, 1):
        left = a[max(0, -d) : a.size - max(0, d)]
        right = b[max(0, d) : b.size - max(0, -d)]
        both = (left > 0) & (right > 0)
        out.append(np.stack([left[both], right[both]], axis=1))
    return np.unique(np.concatenate(out), axis=0)


def _face_pairs(grid: list[list[Components]], offsets: np.ndarray, chunking: Chunking):
    """``(n, 2)`` offset local ids that touch across chunk faces (8-connectivity)."""
    rows, cols = chunking.grid
    widths = np.diff(chunking.xs).tolist()
    heights = np.diff(chunking.ys).tolist()
    found = [np.zeros((0, 2), np.int64)]
    for i in range(1, rows):
        above = _offset_line(_line(grid[i - 1], 1), widths, offsets[i - 1].tolist())
        below = _offset_line(_line(grid[i], 0), widths, offsets[i].tolist())
        found.append(_touching(above, below))
    for j in range(1, cols):
        left_parts = [grid[i][j - 1] for i in range(rows)]
        right_parts = [grid[i][j] for i in range(rows)]
        left = _offset_line(_line(left_parts, 3), heights, offsets[:, j - 1].tolist())
        right = _offset_line(_line(right_parts, 2), heights, offsets[:, j].tolist())
        found.append(_touching(left, right))
    return np.concatenate(found)


def _components(pairs: np.ndarray, total: int) -> np.ndarray:
    """Component index (0 = background) of every offset local id ``0..total``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = total + 1
    graph = coo_matrix(
        (np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n)
    ).tocsr()
    _, component = connected_components(graph, directed=False)
    return component


def join(chunking: Chunking, parts: dict[tuple[int, int], Components], width: int) -> GlobalIds:
    """Global components from the per-chunk components of every chunk of ``chunking``."""
    rows, cols = chunking.grid
    grid = [[parts[(i, j)] for j in range(cols)] for i in range(rows)]
    counts = np.array([[grid[i][j].count for j in range(cols)] for i in range(rows)], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts.ravel())[:-1]]).reshape(rows, cols)
    total = int(counts.sum())
    component = _components(_face_pairs(grid, offsets, chunking), total)
    flat = [grid[i][j] for i in range(rows) for j in range(cols)]
    keys = np.concatenate([[-1], *(p.keys for p in flat)]).astype(np.int64)
    sizes = np.concatenate([[0], *(p.sizes for p in flat)]).astype(np.int64)
    boxes = np.concatenate([np.zeros((1, 4), np.int64), *(p.boxes for p in flat)])
    n_comp = int(component.max(initial=0)) + 1
    first = np.full(n_comp, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, component[1:], keys[1:])
    first[component[0]] = -1  # the background's component sorts first and becomes id 0
    order = np.argsort(first, kind="stable")
    rank = np.empty(n_comp, np.int64)
    rank[order] = np.arange(n_comp)
    lut = rank[component].astype(np.uint32)
    lut[0] = 0
    n = n_comp - 1
    out_sizes = np.bincount(lut, weights=sizes, minlength=n + 1).astype(np.int64)
    out_boxes = np.zeros((n + 1, 4), np.int64)
    out_boxes[:, [0, 2]] = np.iinfo(np.int64).max
    np.minimum.at(out_boxes[:, 0], lut[1:], boxes[1:, 0])
    np.maximum.at(out_boxes[:, 1], lut[1:], boxes[1:, 1])
    np.minimum.at(out_boxes[:, 2], lut[1:], boxes[1:, 2])
    np.maximum.at(out_boxes[:, 3], lut[1:], boxes[1:, 3])
    out_boxes[0] = 0
    out_keys = np.zeros(n + 1, np.int64)
    out_keys[1:] = first[order[1:]]
    return GlobalIds(chunking, offsets, counts, lut, out_sizes, out_boxes, out_keys)


def label_mask(mask: Any, chunking: Chunking | None = None) -> tuple[np.ndarray, GlobalIds]:
    """Whole-image uint32 labels (8-connectivity) of a ``Y×X`` mask, labelled chunk by chunk.

    The labels equal ``scipy.ndimage.label``'s (same ids), whatever the chunking; a numpy or
    dask mask, cut by ``chunking`` (default: the dask chunks, or one chunk).
    """
    if chunking is None:
        chunks = getattr(mask, "chunks", None) or ((mask.shape[0],), (mask.shape[1],))
        chunking = Chunking(tuple(np.cumsum((0, *chunks[0])).tolist()),
                            tuple(np.cumsum((0, *chunks[1])).tolist()))  # fmt: skip
    local = np.zeros(mask.shape, np.uint32)
    parts = {}
    for i, j in chunking.indices():
        y0, y1, x0, x1 = chunking.bounds(i, j)
        block = np.asarray(mask[y0:y1, x0:x1])
        local[y0:y1, x0:x1], parts[(i, j)] = label_components(block, y0, x0, mask.shape[1])
    ids = join(chunking, parts, mask.shape[1])
    out = np.zeros(mask.shape, np.uint32)
    for i, j in chunking.indices():
        y0, y1, x0, x1 = chunking.bounds(i, j)
        out[y0:y1, x0:x1] = ids.of_block(local[y0:y1, x0:x1], i, j)
    return out, ids
