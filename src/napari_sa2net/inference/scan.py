"""One streaming pass before prediction: normalization statistics and the empty-background map.

Every chunk of the image is read once. From it the pass keeps

- the pixels of the statistics' sample grid (rows and columns that are multiples of
  :func:`~napari_sa2net.normalization.sample_step`, the same grid as
  :meth:`~napari_sa2net.normalization.Normalization.statistics`), and
- per ``cell × cell`` cell of the image (16 px, larger for huge slides) and channel: the mean,
  the lowest and highest mean of its 4×4-pixel bins, and the pixel noise inside the bins.

**Background test.** The image's own noise ``σ`` is the 25th percentile of the cells' in-bin
noise (camera noise where there is glass; fine texture inflates it elsewhere) and the background
level ``B`` the median mean of the cells that look like noise. A cell is empty background when,
in every channel, its mean lies within ``0.5 σ`` of ``B`` and each of its bins within ``1.5 σ``
(a bin averages 16 pixels, so that is six times the bins' own noise: empty glass passes, a hot
pixel passes, a nucleus of 12 px or more with a contrast of 1.5 σ fails). A tile is skipped
when every cell it touches is background: it is neither read again nor predicted, and counts as
background probability in the blend. Skipped tiles can only be slower to find, never wrongly
skipped, where the background is uneven (shading moves cells away from ``B``).

**Statistics from the tissue.** With background skipping on, the percentiles come from the
sample pixels that predicted tiles cover, so empty glass around the tissue does not change how
the tissue is normalized: the centre of a mostly empty slide is normalized like the same tissue
cropped alone. Without skipping (or when every tile is empty) the whole sample is used.

The pass runs on any dask scheduler, in batches of chunks (progress and cancel between them);
chunks are re-cut on the cell grid so that every cell lies in one chunk and the maps do not
depend on the chunking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..normalization import Normalization, sample_step
from .tiling import TilePlan

#: Smallest cell edge of the map, in pixels (a multiple of :data:`BIN`).
MIN_CELL = 16
#: Largest number of cells of the map (``cell`` doubles until the map fits).
MAX_CELLS = 2048 * 2048
#: Edge of the bins whose means the background test checks.
BIN = 4
#: Quantile of the cells' in-bin noise taken as the image's noise.
NOISE_QUANTILE = 0.25
#: Tolerances in noise SDs: cell mean and bin means around the background level.
MEAN_TOLERANCE, BIN_TOLERANCE = 0.5, 1.5
#: Noise floor as a fraction of the normalization span (noiseless synthetic images).
NOISE_FLOOR = 0.0025
#: Gaps in the tissue narrower than this (pixels) are tissue for the statistics.
TISSUE_GAP = 128
#: Chunks read per batch of the pass (progress and cancel between batches).
BATCH = 16


def cell_size(shape: tuple[int, int]) -> int:
    """Cell edge for an image of ``shape``: :data:`MIN_CELL`, doubled until the map fits."""
    cell = MIN_CELL
    while -(-shape[0] // cell) * -(-shape[1] // cell) > MAX_CELLS:
        cell *= 2
    return cell


@dataclass(frozen=True)
class CellMaps:
    """Per-cell ``rows × cols × C`` float32 maps of the raw image (NaN where a cell is empty)."""

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    noise: np.ndarray


@dataclass(frozen=True)
class Scan:
    """What the pass found.

    Attributes
    ----------
    stats : tuple of np.ndarray
        Per-channel normalization ``(low, high)`` in raw units (of the flattened image when
        :attr:`field` is set).
    skip : frozenset of int
        Indices of the plan's tiles that are empty background.
    cell : int
        Cell edge of :attr:`covered`.
    covered : np.ndarray or None
        ``rows × cols`` bool: cells some predicted tile touches (``None`` without the map).
    noise : np.ndarray or None
        The image's noise ``σ`` per channel (raw units).
    field : np.ndarray or None
        ``rows × cols × C`` background field at the cell centres (raw units) that the run
        subtracts from the image (:mod:`.flatten`); ``None``: the image is used as it is.
    unevenness : float or None
        The estimated field's range over the normalization span (``None``: not estimated).
    """

    stats: tuple[np.ndarray, np.ndarray]
    skip: frozenset[int]
    cell: int
    covered: np.ndarray | None
    noise: np.ndarray | None
    field: np.ndarray | None = None
    unevenness: float | None = None


@dataclass(frozen=True)
class _Part:
    cy: int
    cx: int
    maps: tuple[np.ndarray, ...] | None
    sample: np.ndarray
    sample_cells: np.ndarray


def _bin_sum(x: np.ndarray, k: int) -> np.ndarray:
    """Sums of ``k × k`` blocks over the first two axes (strided adds, ~10x a reshape-sum)."""
    rows = x[0::k].astype(np.float32)
    for i in range(1, k):
        rows += x[i::k]
    out = rows[:, 0::k].copy()
    for j in range(1, k):
        out += rows[:, j::k]
    return out


def _robust_bins(x: np.ndarray) -> np.ndarray:
    """Means over ``BIN × BIN`` bins of the medians of 2×2 pixels (median of 4: the mean of
    the middle two = (sum - min - max) / 2)."""
    a, b, c, d = x[0::2, 0::2], x[0::2, 1::2], x[1::2, 0::2], x[1::2, 1::2]
    low = np.minimum(np.minimum(a, b), np.minimum(c, d))
    high = np.maximum(np.maximum(a, b), np.maximum(c, d))
    medians = (a + b + c + d - low - high) * 0.5
    return _bin_sum(medians, BIN // 2) / (BIN // 2) ** 2


def _cell_maps(block: np.ndarray, cell: int) -> tuple[np.ndarray, ...]:
    """``(mean, low, high, noise)`` per cell of a block whose origin lies on the cell grid."""
    h, w, channels = block.shape
    rows, cols = -(-h // cell), -(-w // cell)
    regular = h == rows * cell and w == cols * cell
    if regular and block.dtype.kind in "uib":
        x, n = block, np.full((rows * cell // BIN, cols * cell // BIN), BIN * BIN, np.float32)
    else:  # partial cells at the image edge, or non-finite values: count valid pixels
        x = np.zeros((rows * cell, cols * cell, channels), np.float32)
        x[:h, :w] = block
        valid = np.isfinite(x).all(-1)
        valid[h:], valid[:, w:] = False, False
        x[~valid] = 0
        n = _bin_sum(valid, BIN)
    # Values near zero keep the float32 sums of squares exact enough.
    offset = np.asarray(x[: min(h, 64), : min(w, 64)], np.float64).reshape(-1, channels)
    offset = np.nan_to_num(np.median(offset, axis=0)).astype(np.float32)
    centred = x - offset if x.dtype.kind == "f" else x.astype(np.float32) - offset
    if x is not block:
        centred[~valid] = 0
    sums = _bin_sum(centred, BIN)
    squares = _bin_sum(centred * centred, BIN)
    k = cell // BIN
    with np.errstate(invalid="ignore", divide="ignore"):
        bin_mean = sums / n[..., None]
        within = np.maximum(squares - sums * np.nan_to_num(bin_mean), 0)
        # The extremes use bins of 2×2 medians: a lone hot pixel shifts no bin at all.
        robust = np.where(n[..., None] == BIN * BIN, _robust_bins(centred), bin_mean)
        count = _bin_sum(n, k)
        filled = _bin_sum((n > 0).astype(np.float32), k)
        mean = _bin_sum(sums, k) / count[..., None]
        noise = np.sqrt(_bin_sum(within, k) / (count - filled)[..., None])
    cell_shape = (rows, k, cols, k, channels)
    occupied = n[..., None] > 0
    low = np.where(occupied, robust, np.inf).reshape(cell_shape).min((1, 3))
    high = np.where(occupied, robust, -np.inf).reshape(cell_shape).max((1, 3))
    empty = count == 0
    low[empty], high[empty] = np.nan, np.nan
    maps = (mean + offset, low + offset, high + offset, noise)
    return tuple(m.astype(np.float32) for m in maps)


def _scan_block(
    block: Any, y0: int, x0: int, cell: int, step: int, grid_cols: int, with_map: bool
) -> _Part:
    """The sample pixels (with their flat cell index) and, optionally, the cell maps."""
    block = np.asarray(block)
    h, w, channels = block.shape
    ry, rx = (-y0) % step, (-x0) % step
    ys, xs = np.arange(y0 + ry, y0 + h, step), np.arange(x0 + rx, x0 + w, step)
    sample = block[ry::step, rx::step].reshape(-1, channels)
    cells = ((ys // cell)[:, None] * grid_cols + (xs // cell)[None, :]).ravel()
    maps = _cell_maps(block, cell) if with_map else None
    return _Part(y0 // cell, x0 // cell, maps, sample, cells.astype(np.int64))


def _blocks(image: Any, cell: int) -> list[tuple[Any, int, int]]:
    """``(block, y0, x0)``: dask chunks re-cut on the cell grid, or cell-aligned row bands."""
    if not hasattr(image, "to_delayed"):
        band = max(cell, 1024 // cell * cell)
        return [(image[y : y + band], y, 0) for y in range(0, image.shape[0], band)]
    bounds = []
    for axis in (0, 1):
        edges = np.cumsum((0, *image.chunks[axis]))
        aligned = np.unique(np.r_[0, np.round(edges[1:-1] / cell) * cell, edges[-1]])
        bounds.append(aligned.astype(int))
    image = image.rechunk((tuple(np.diff(bounds[0])), tuple(np.diff(bounds[1])), -1))
    delayed = image.to_delayed()
    return [
        (delayed[i, j, 0], int(bounds[0][i]), int(bounds[1][j]))
        for i in range(len(bounds[0]) - 1)
        for j in range(len(bounds[1]) - 1)
    ]


def read_parts(
    image: Any,
    cell: int,
    with_map: bool,
    scheduler: Any = None,
    on_progress: Callable[[int, int], Any] | None = None,
) -> list[_Part]:
    """Scan every chunk of a ``YXC`` numpy or dask image, :data:`BATCH` chunks at a time."""
    import dask

    step = sample_step(image.shape[:2])
    cols = -(-image.shape[1] // cell)
    blocks = _blocks(image, cell)
    task = dask.delayed(_scan_block, pure=True)
    parts: list[_Part] = []
    for start in range(0, len(blocks), BATCH):
        batch = blocks[start : start + BATCH]
        tasks = [task(b, y, x, cell, step, cols, with_map) for b, y, x in batch]
        parts.extend(dask.compute(*tasks, scheduler=scheduler or "threads"))
        if on_progress is not None:
            on_progress(len(parts), len(blocks))
    return parts


def assemble(parts: list[_Part], shape: tuple[int, int], cell: int) -> CellMaps:
    """The whole-image cell maps from the parts of :func:`read_parts`."""
    rows, cols = -(-shape[0] // cell), -(-shape[1] // cell)
    channels = parts[0].maps[0].shape[-1]
    maps = [np.full((rows, cols, channels), np.nan, np.float32) for _ in range(4)]
    for part in parts:
        h, w = part.maps[0].shape[:2]
        for whole, piece in zip(maps, part.maps):
            whole[part.cy : part.cy + h, part.cx : part.cx + w] = piece
    return CellMaps(*maps)


def background_cells(maps: CellMaps, span: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(background, noise)``: ``rows × cols`` bool map of empty cells, and ``σ`` per channel.

    ``span`` is the per-channel normalization span (``high - low``), for the noise floor.
    Cells without any finite pixel count as background.
    """
    channels = maps.mean.shape[-1]
    background = np.ones(maps.mean.shape[:2], bool)
    sigmas = np.zeros(channels)
    for c in range(channels):
        noise = maps.noise[..., c]
        finite = np.isfinite(noise)
        if not finite.any():
            continue
        sigma = max(float(np.quantile(noise[finite], NOISE_QUANTILE)), NOISE_FLOOR * span[c])
        sigmas[c] = sigma
        mean, low, high = maps.mean[..., c], maps.low[..., c], maps.high[..., c]
        quiet = finite & (noise <= 1.5 * sigma) & (high - low <= 2 * BIN_TOLERANCE * sigma)
        if quiet.sum() < 0.05 * finite.sum():
            return np.zeros_like(background), sigmas  # no credible background level
        level = float(np.median(mean[quiet]))
        with np.errstate(invalid="ignore"):
            empty = (
                (np.abs(mean - level) <= MEAN_TOLERANCE * sigma)
                & (high - level <= BIN_TOLERANCE * sigma)
                & (level - low <= BIN_TOLERANCE * sigma)
            )
        background &= empty | ~np.isfinite(mean)
    return background, sigmas


def _cell_range(tile: Any, cell: int) -> tuple[slice, slice]:
    return (
        slice(tile.y0 // cell, -(-tile.y1 // cell)),
        slice(tile.x0 // cell, -(-tile.x1 // cell)),
    )


def skipped_tiles(plan: TilePlan, background: np.ndarray, cell: int) -> frozenset[int]:
    """Tiles all of whose cells are background (a summed-area table: O(1) per tile)."""
    busy = np.pad((~background).astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    skip = set()
    for tile in plan:
        ys, xs = _cell_range(tile, cell)
        count = busy[ys.stop, xs.stop] - busy[ys.start, xs.stop] - busy[ys.stop, xs.start]
        if count + busy[ys.start, xs.start] == 0:
            skip.add(tile.index)
    return frozenset(skip)


def covered_cells(plan: TilePlan, skip: frozenset[int], shape: tuple[int, int], cell: int):
    """``rows × cols`` bool: cells that some predicted (not skipped) tile touches."""
    covered = np.zeros(shape, bool)
    for tile in plan:
        if tile.index not in skip:
            covered[_cell_range(tile, cell)] = True
    return covered


def scan(
    image: Any,
    plan: TilePlan,
    normalization: Normalization,
    skip_background: bool,
    scheduler: Any = None,
    on_progress: Callable[[int, int], Any] | None = None,
    measure_noise: bool = False,
    flatten: bool | str = False,
    reach: float = 64.0,
) -> Scan:
    """Read ``image`` (``YXC``, numpy or dask) once: statistics and the tiles to skip.

    The cell maps (and with them the image's noise) are built when ``skip_background``,
    ``measure_noise`` or ``flatten`` asks for them; without ``skip_background`` no tile is
    skipped. ``flatten`` (``True`` or ``"auto"``, see :mod:`.flatten`) estimates the
    background field from the maps (opening half-width ``reach`` pixels); when it is used, the
    statistics and the background test are those of the image minus the field.
    """
    cell = cell_size(plan.shape)
    with_map = bool(skip_background or measure_noise or flatten)
    parts = read_parts(image, cell, with_map, scheduler, on_progress)
    sample = np.concatenate([p.sample for p in parts])
    stats = normalization.from_sample(sample)
    if not with_map:
        return Scan(stats, frozenset(), cell, None, None)
    maps = assemble(parts, plan.shape, cell)
    sample_cells = np.concatenate([p.sample_cells for p in parts])
    field, uneven = _field(maps, cell, stats, flatten, reach)
    if field is not None:
        maps = CellMaps(maps.mean - field, maps.low - field, maps.high - field, maps.noise)
        sample = sample - field.reshape(-1, field.shape[-1])[sample_cells]
        stats = normalization.from_sample(sample)
    background, noise = background_cells(maps, stats[1] - stats[0])
    if not skip_background:
        return Scan(stats, frozenset(), cell, None, noise, field, uneven)
    skip = skipped_tiles(plan, background, cell)
    covered = covered_cells(plan, skip, background.shape, cell)
    if skip and len(skip) < len(plan):
        tissue = tissue_cells(background, cell).ravel()[sample_cells]
        if tissue.any():
            stats = normalization.from_sample(sample[tissue])
    return Scan(stats, skip, cell, covered, noise, field, uneven)


def _field(
    maps: CellMaps, cell: int, stats: tuple, flatten: bool | str, reach: float
) -> tuple[np.ndarray | None, float | None]:
    """The background field to subtract (``None``: not asked, or ``"auto"`` and the image
    evenly lit) and its unevenness."""
    if not flatten:
        return None, None
    from .flatten import UNEVEN_THRESHOLD, background_field, unevenness

    field = background_field(maps.low, cell, reach)
    uneven = unevenness(field, stats)
    if flatten == "auto" and uneven < UNEVEN_THRESHOLD:
        return None, uneven
    return field, uneven


def tissue_cells(background: np.ndarray, cell: int) -> np.ndarray:
    """The tissue as one would crop it: non-background cells with gaps under
    :data:`TISSUE_GAP` pixels and enclosed holes filled (the glass inside the tissue counts,
    the glass around it does not)."""
    from scipy import ndimage as ndi

    radius = max(1, round(TISSUE_GAP / 2 / cell))
    square = np.ones((2 * radius + 1, 2 * radius + 1), bool)
    padded = np.pad(~background, radius)
    closed = ndi.binary_closing(padded, structure=square)[radius:-radius, radius:-radius]
    return ndi.binary_fill_holes(closed)
