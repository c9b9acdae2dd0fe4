"""The dask pipeline for images larger than memory: probabilities, then instances, chunk by chunk.

1. **Probabilities.** One group task per output chunk predicts the tiles that start in it and
   returns its accumulation split into core and spills (:mod:`.stitching`); one merge task per
   chunk adds its core to the spills of its left, upper and upper-left neighbours. The result is
   stored in a scratch zarr array (``K×H×W`` float32), so the network runs once per tile.
2. **Instances** (same algorithm as :func:`.postprocess.probabilities_to_instances`, with global
   ids): interior seeds are labelled across chunks (:mod:`.labeling`), small seeds dropped,
   grown into the foreground by a watershed in ``map_overlap`` blocks whose halo (``grow_depth``)
   exceeds the growth distance, so every chunk agrees on the grown pixels; foreground left
   without a seed is labelled globally as objects of its own; objects smaller than ``min_size``
   are removed and ids renumbered 1..N. Binary mode labels the foreground globally.

Every stage reads from and writes to zarr, so the peak memory is a few chunks, whatever the
slide size. The graph runs on any dask scheduler: the local threads by default, or a
``dask.distributed`` client (the scratch folder must then be visible to the workers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .labeling import label_mask
from .postprocess import grow_seeds
from .stitching import (
    Chunking,
    accumulate_group,
    group_extent,
    group_tiles,
    merge_chunk,
    split_group,
)
from .tiling import TilePlan


def _group_task(region, extent, bounds, tiles, plan, predictor, stats, num_classes, flat_range):
    if not tiles:
        height, width = bounds[1] - bounds[0], bounds[3] - bounds[2]
        acc = np.zeros((num_classes + 1, height, width), np.float64)
    else:
        acc = accumulate_group(
            region, extent, tiles, plan, predictor, stats, num_classes, flat_range
        )
    return split_group(acc, bounds)


def probability_graph(
    image: Any,
    plan: TilePlan,
    chunking: Chunking,
    predictor: Any,
    stats: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    flat_range: float | None,
) -> Any:
    """Lazy ``K×H×W`` float32 probabilities of a ``YXC`` dask image (see the module docstring).

    ``predictor`` is a :class:`~.predictor.Predictor` or a distributed future of one.
    """
    import dask
    import dask.array as da

    groups = group_tiles(plan, chunking)
    rows, cols = chunking.grid
    parts: dict[tuple[int, int], Any] = {}
    for i in range(rows):
        for j in range(cols):
            bounds = chunking.bounds(i, j)
            tiles = groups.get((i, j), [])
            extent = group_extent(tiles, bounds)
            region = image[extent[0] : extent[1], extent[2] : extent[3]] if tiles else None
            task = dask.delayed(_group_task, nout=4, pure=True)
            parts[i, j] = task(
                region, extent, bounds, tiles, plan, predictor, stats, num_classes, flat_range
            )
    blocks = []
    for i in range(rows):
        row = []
        for j in range(cols):
            y0, y1, x0, x1 = chunking.bounds(i, j)
            merged = dask.delayed(merge_chunk, pure=True)(
                (y1 - y0, x1 - x0),
                num_classes,
                parts[i, j][0],
                parts[i, j - 1][1] if j else None,
                parts[i - 1, j][2] if i else None,
                parts[i - 1, j - 1][3] if i and j else None,
            )
            shape = (num_classes, y1 - y0, x1 - x0)
            row.append(da.from_delayed(merged, shape=shape, dtype=np.float32))
        blocks.append(row)
    return da.block(blocks)


def _store(array: Any, scratch: Path, name: str, scheduler: Any) -> Any:
    import dask.array as da

    path = str(scratch / name)
    array.to_zarr(path, overwrite=True, compute=False).compute(scheduler=scheduler)
    return da.from_zarr(path)


def _block_sizes(labels: Any, n: int, scheduler: Any) -> np.ndarray:
    """Pixel count per id ``0..n`` of a chunked label array, via sparse per-block counts."""
    import dask

    def count(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.unique(block, return_counts=True)

    sizes = np.zeros(n + 1, np.int64)
    tasks = [dask.delayed(count)(b) for b in labels.to_delayed().ravel()]
    for ids, counts in dask.compute(*tasks, scheduler=scheduler):
        sizes[ids] += counts
    return sizes


def _lookup(block: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return lut[block]


def _renumber(labels: Any, sizes: np.ndarray, min_size: int) -> tuple[Any, int]:
    import dask

    keep = sizes >= max(1, min_size)
    keep[0] = False
    lut = np.zeros(sizes.size, np.uint32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    lut_ref = dask.delayed(lut, pure=True)
    out = labels.map_blocks(_lookup, lut_ref, dtype=np.uint32, meta=np.empty((0, 0), np.uint32))
    return out, int(keep.sum())


def instances_chunked(
    probs: Any,
    mode: str,
    scratch: Path,
    *,
    interior_threshold: float,
    foreground_threshold: float,
    min_size: int,
    grow_depth: int,
    scheduler: Any = None,
) -> tuple[Any, int]:
    """Lazy uint32 ``Y×X`` instance labels with global ids from ``K×H×W`` probabilities.

    ``probs`` should be backed by zarr (cheap to read twice); returns ``(labels, n_objects)``.
    """
    if mode == "binary":
        foreground = probs[-1] > foreground_threshold
        labels = label_mask(foreground, scratch, "objects", scheduler).drop_small(min_size)
        return labels.to_dask(), labels.count
    background = probs[0]
    foreground = (1.0 - background) > foreground_threshold
    interior = (probs[1] > interior_threshold) & foreground
    seeds = label_mask(interior, scratch, "seeds", scheduler).drop_small(max(1, min_size // 4))
    import dask.array as da

    grown = da.map_overlap(
        grow_seeds,
        seeds.to_dask(),
        background,
        depth=grow_depth,
        boundary="none",
        dtype=np.uint32,
        foreground_threshold=foreground_threshold,
    )
    grown = _store(grown.rechunk(background.chunks), scratch, "grown", scheduler)
    orphans = label_mask(foreground & (grown == 0), scratch, "orphans", scheduler)
    orphan_ids = orphans.to_dask()
    offset = np.uint32(seeds.count)
    combined = grown + (orphan_ids + offset) * (orphan_ids > 0)
    combined = _store(combined.astype(np.uint32), scratch, "combined", scheduler)
    sizes = _block_sizes(combined, seeds.count + orphans.count, scheduler)
    return _renumber(combined, sizes, min_size)
