"""Which tiles hold nothing but flat background, decided on a low-resolution map before reading.

One streaming pass over the image, chunk by chunk, reduces the *normalized* image (the same
:meth:`~napari_sa2net.normalization.Normalization.apply` the tiles get) to a map of the minimum
and maximum of every ``cell × cell`` block, all channels together. A tile whose cells span less
than ``flat_range`` is background: it is neither read again nor predicted, and it counts as
background probability in the blend. The cells covering a tile cover at least the tile, so the
check is conservative: it never skips a tile whose own pixels span ``flat_range`` or more.

Empty glass on a slide is the common case (often half of a whole-slide scan); the map costs one
read of the image and a reduction, against a forward pass per tile. The map is a few megabytes:
``cell`` grows with the image so that it stays at most :data:`MAX_CELLS` cells.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..normalization import Normalization
from .tiling import TilePlan

#: Default spread (max - min of the normalized tile) below which a tile counts as empty.
FLAT_RANGE = 0.02
#: Smallest cell edge of the min/max map, in pixels.
MIN_CELL = 16
#: Largest number of cells of the map.
MAX_CELLS = 4096 * 4096


def cell_size(shape: tuple[int, int]) -> int:
    """Cell edge for an image of ``shape``: :data:`MIN_CELL`, doubled until the map fits."""
    cell = MIN_CELL
    while -(-shape[0] // cell) * -(-shape[1] // cell) > MAX_CELLS:
        cell *= 2
    return cell


def _reduce_block(
    block: np.ndarray, y0: int, x0: int, cell: int, stats: tuple[np.ndarray, np.ndarray]
) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Min and max maps of the cells a ``YXC`` block at ``(y0, x0)`` touches."""
    norm = Normalization.apply(np.asarray(block), *stats)
    low, high = norm.min(axis=-1), norm.max(axis=-1)
    h, w = low.shape
    rows = np.unique(np.r_[0, np.arange(-y0 % cell, h, cell)])  # starts of cell rows
    cols = np.unique(np.r_[0, np.arange(-x0 % cell, w, cell)])
    low = np.minimum.reduceat(np.minimum.reduceat(low, rows, axis=0), cols, axis=1)
    high = np.maximum.reduceat(np.maximum.reduceat(high, rows, axis=0), cols, axis=1)
    return y0 // cell, x0 // cell, low, high


def _blocks(image: Any) -> list[tuple[Any, int, int]]:
    """``(block, y0, x0)`` for every chunk of a dask image, or row bands of a numpy one."""
    if hasattr(image, "to_delayed"):
        ys = np.cumsum((0, *image.chunks[0]))
        xs = np.cumsum((0, *image.chunks[1]))
        delayed = image.to_delayed().reshape(len(ys) - 1, len(xs) - 1)
        return [
            (delayed[i, j], int(ys[i]), int(xs[j]))
            for i in range(len(ys) - 1)
            for j in range(len(xs) - 1)
        ]
    band = 1024
    return [(image[y : y + band], y, 0) for y in range(0, image.shape[0], band)]


def cell_extrema(
    image: Any, stats: tuple[np.ndarray, np.ndarray], cell: int, scheduler: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` float32 maps: min and max of the normalized image per ``cell²`` block.

    Parameters
    ----------
    image : numpy.ndarray or dask.array.Array
        ``YXC``; a dask image is reduced chunk by chunk on ``scheduler``, never held whole.
    stats : tuple of np.ndarray
        Per-channel normalization ``(low, high)`` of the whole image.
    """
    import dask

    shape = (-(-image.shape[0] // cell), -(-image.shape[1] // cell))
    low = np.full(shape, np.inf, np.float32)
    high = np.full(shape, -np.inf, np.float32)
    task = dask.delayed(_reduce_block, pure=True)
    parts = [task(block, y0, x0, cell, stats) for block, y0, x0 in _blocks(image)]
    for cy, cx, part_low, part_high in dask.compute(*parts, scheduler=scheduler):
        window = (slice(cy, cy + part_low.shape[0]), slice(cx, cx + part_low.shape[1]))
        np.minimum(low[window], part_low, out=low[window])
        np.maximum(high[window], part_high, out=high[window])
    return low, high


def flat_tiles(
    image: Any,
    plan: TilePlan,
    stats: tuple[np.ndarray, np.ndarray],
    flat_range: float | None = FLAT_RANGE,
    scheduler: Any = None,
) -> frozenset[int]:
    """Indices of the tiles of ``plan`` whose normalized values span less than ``flat_range``.

    ``flat_range=None`` skips nothing (and reads nothing).
    """
    if flat_range is None:
        return frozenset()
    cell = cell_size(plan.shape)
    low, high = cell_extrema(image, stats, cell, scheduler)
    flat = set()
    for tile in plan:
        cells = (
            slice(tile.y0 // cell, -(-tile.y1 // cell)),
            slice(tile.x0 // cell, -(-tile.x1 // cell)),
        )
        if float(high[cells].max()) - float(low[cells].min()) < flat_range:
            flat.add(tile.index)
    return frozenset(flat)
