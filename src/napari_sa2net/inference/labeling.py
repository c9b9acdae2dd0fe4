"""Connected components of a chunked mask with globally unique ids, in bounded memory.

dask-image's ``ndmeasure.label`` keeps every labelled block in memory until the cross-block
mapping is known, which does not fit a whole slide. Here the blocks are labelled one by one into
a scratch zarr array, the label pairs that touch across block faces (8-connectivity) are read
back from one-pixel lines, merged with a sparse connected-components pass, and the resulting
lookup table is applied lazily block by block. Only the lookup table (one entry per local object)
is held whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

EIGHT = np.ones((3, 3), bool)


def _label_block(block: np.ndarray, path: str, y: int, x: int) -> np.ndarray:
    """Label one mask block into the scratch array; returns its per-id pixel counts."""
    import zarr

    labels, _ = ndi.label(np.asarray(block), structure=EIGHT)
    labels = labels.astype(np.uint32)
    zarr.open_array(path, mode="r+")[y : y + labels.shape[0], x : x + labels.shape[1]] = labels
    return np.bincount(labels.ravel())[1:].astype(np.int64)


@dataclass
class GlobalLabels:
    """Labels of a chunked mask: scratch block labels + per-block offsets + a lookup table.

    ``lut[offset_of_block + local_id]`` is the global id (``0`` = dropped / background).
    """

    path: str
    chunks: tuple[tuple[int, ...], tuple[int, ...]]
    offsets: np.ndarray  # (rows, cols) int64
    lut: np.ndarray  # uint32, length total + 1
    sizes: np.ndarray  # int64 pixel count per global id, index 0 unused

    @property
    def count(self) -> int:
        return int(self.sizes.size - 1)

    def drop_small(self, min_size: int) -> GlobalLabels:
        """Remove objects with fewer than ``min_size`` pixels and renumber 1..N (order kept)."""
        keep = self.sizes >= max(1, min_size)
        keep[0] = False
        renumber = np.zeros(self.sizes.size, np.uint32)
        renumber[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
        sizes = np.concatenate([[0], self.sizes[keep]])
        return GlobalLabels(self.path, self.chunks, self.offsets, renumber[self.lut], sizes)

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Global uint32 labels of ``[y0:y1, x0:x1]``, read straight from the scratch array.

        Reads only the blocks the window touches; no dask graph, so windows that overlap
        share nothing in memory.
        """
        import zarr

        local = np.asarray(zarr.open_array(self.path, mode="r")[y0:y1, x0:x1])
        ys, xs = np.cumsum((0, *self.chunks[0])), np.cumsum((0, *self.chunks[1]))
        rows = np.searchsorted(ys, np.arange(y0, y1), side="right") - 1
        cols = np.searchsorted(xs, np.arange(x0, x1), side="right") - 1
        ids = local.astype(np.int64) + self.offsets[rows[:, None], cols[None, :]]
        return np.where(local > 0, self.lut[ids * (local > 0)], 0).astype(np.uint32)

    def to_dask(self) -> Any:
        """Lazy uint32 ``Y×X`` global labels, chunked like the mask."""
        import dask
        import dask.array as da

        local = da.from_zarr(self.path, chunks=self.chunks)
        lut = dask.delayed(self.lut, pure=True)
        offsets = self.offsets
        meta = np.empty((0, 0), np.uint32)
        return local.map_blocks(_apply_lut, lut, offsets, dtype=np.uint32, meta=meta)


def _apply_lut(block: np.ndarray, lut: np.ndarray, offsets: np.ndarray, block_info=None):
    i, j = block_info[0]["chunk-location"]
    return np.where(block > 0, lut[block.astype(np.int64) + offsets[i, j]], 0).astype(np.uint32)


def label_mask(mask: Any, scratch: Path, name: str, scheduler: Any = None) -> GlobalLabels:
    """Globally labelled connected components (8-connectivity) of a chunked ``Y×X`` mask.

    Parameters
    ----------
    mask : dask.array.Array
        Boolean ``Y×X`` mask with regular chunks (the last ones may be smaller).
    scratch : Path
        Folder for the scratch zarr array ``name`` (visible to every dask worker).
    scheduler : optional
        Passed to ``dask.compute`` (``None`` = the current default).
    """
    import dask
    import zarr

    from ..io._zarr_compat import create_array

    path = str(Path(scratch) / name)
    chunks = tuple(tuple(int(c) for c in axis) for axis in mask.chunks)
    create_array(
        path,
        shape=mask.shape,
        chunks=(chunks[0][0], chunks[1][0]),
        dtype=np.uint32,
        fill_value=0,
        overwrite=True,
    )
    ys, xs = np.cumsum((0, *chunks[0])), np.cumsum((0, *chunks[1]))
    blocks = mask.to_delayed()
    tasks = [
        dask.delayed(_label_block)(blocks[i, j], path, int(ys[i]), int(xs[j]))
        for i in range(len(ys) - 1)
        for j in range(len(xs) - 1)
    ]
    local_sizes = dask.compute(*tasks, scheduler=scheduler)
    counts = np.array([s.size for s in local_sizes], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).reshape(len(ys) - 1, len(xs) - 1)
    total = int(counts.sum())
    pairs = _face_pairs(zarr.open_array(path, mode="r"), ys, xs, offsets)
    lut = _components(pairs, total)
    flat_sizes = np.concatenate([np.zeros(1, np.int64), *local_sizes])
    sizes = np.bincount(lut, weights=flat_sizes, minlength=int(lut.max(initial=0)) + 1)
    return GlobalLabels(path, chunks, offsets, lut, sizes.astype(np.int64))


def _offset_line(line: np.ndarray, bounds: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Add each block's offset to a line of local ids crossing blocks at ``bounds``."""
    per_pixel = np.repeat(offsets, np.diff(bounds))
    return np.where(line > 0, line.astype(np.int64) + per_pixel, 0)


def _face_pairs(local: Any, ys: np.ndarray, xs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``(n, 2)`` pairs of global-local ids that touch across block faces (8-connectivity)."""
    found = [np.zeros((0, 2), np.int64)]
    for i in range(1, len(ys) - 1):
        y = int(ys[i])
        above = _offset_line(local[y - 1, :], xs, offsets[i - 1])
        below = _offset_line(local[y, :], xs, offsets[i])
        found.append(_touching(above, below))
    for j in range(1, len(xs) - 1):
        x = int(xs[j])
        left = _offset_line(local[:, x - 1], ys, offsets[:, j - 1])
        right = _offset_line(local[:, x], ys, offsets[:, j])
        found.append(_touching(left, right))
    return np.concatenate(found)


def _touching(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairs ``(a[k], b[k + d])`` for ``d`` in -1, 0, 1 where both are labelled."""
    out = []
    for d in (-1, 0, 1):
        left = a[max(0, -d) : a.size - max(0, d)]
        right = b[max(0, d) : b.size - max(0, -d)]
        both = (left > 0) & (right > 0)
        out.append(np.stack([left[both], right[both]], axis=1))
    return np.unique(np.concatenate(out), axis=0)


def _components(pairs: np.ndarray, total: int) -> np.ndarray:
    """Lookup table local id (with offset, 1-based) -> global id 1..N in first-seen order."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = total + 1
    graph = coo_matrix(
        (np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n)
    ).tocsr()
    _, component = connected_components(graph, directed=False)
    # Renumber components 1..N in order of their smallest member (node 0 is the background).
    first = np.full(component.max() + 1, n, np.int64)
    np.minimum.at(first, component, np.arange(n))
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    lut = (rank[component] - rank[component[0]]).astype(np.int64)
    lut[0] = 0
    return lut.astype(np.uint32)
