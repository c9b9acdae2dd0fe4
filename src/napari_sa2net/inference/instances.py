"""Instance labels with global ids from the stored maps: the same objects at any chunking.

The algorithm is the whole-image one (:mod:`.postprocess`): interior seeds smaller than
``min_size // 4`` are dropped, the others are grown into the foreground by a watershed on the
background probability, foreground no seed reaches becomes objects of its own, objects smaller
than ``min_size`` are removed, except those touching the image's edge (nuclei cut by it), which
are kept down to ``min_size // 4``. It is computed per foreground *component* (8-connected), which
makes it exact out of core:

- a component with no seed is one object, with one seed it is that seed's object: no
  watershed is needed, and its size is known from the per-chunk tables;
- a component with two or more seeds is flooded in a window that holds its whole box. A
  watershed restricted to one component depends only on that component's pixels, so the window
  gives the very labels a whole-image watershed gives, whatever the chunks. Components inside
  one chunk were already split by the sink (:mod:`.maps`); those that cross chunk edges are
  flooded here, each chunk flooding the ones that touch it and keeping its own pixels.

Components larger than :data:`MAX_EXTENT` in either direction (confluent tissue, rarely nuclei)
that cross chunk edges are flooded in a window of the chunk plus :data:`GIANT_HALO`; only they
may differ from a whole-image run near chunk borders, and the result says how many there were.

Passes, each a set of independent per-chunk tasks on the dask scheduler:

A. labelling (and splitting inside chunks), done by the sink as chunks are stored;
   joining the per-chunk tables into global components and seeds (:mod:`.labeling`);
B. the watershed of multi-seed components that cross chunk edges, per chunk, into ``grown``;
   numbering the objects in raster order of their components (then seeds), small ones dropped;
C. the final labels of each non-empty chunk, written to the target (the label store).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .labeling import GlobalIds, join
from .maps import MapSink, Thresholds, flood
from .merger import Chunking

#: Components whose box is larger than this in either direction are flooded approximately.
MAX_EXTENT = 2048
#: Context around a chunk when flooding a component larger than :data:`MAX_EXTENT`.
GIANT_HALO = 256
#: Largest window (pixels) flooded in one call; above it each component gets its own.
WINDOW_BUDGET = 4 * 1024 * 1024


@dataclass
class Objects:
    """The global tables of the instance stage."""

    fg: GlobalIds
    seeds: GlobalIds | None
    #: Component of each (kept) seed, and the number of kept seeds of each component.
    seed_comp: np.ndarray
    n_seeds: np.ndarray
    giant: np.ndarray
    #: Multi-seed components that cross chunk edges, per chunk they touch.
    work: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    #: Pixels of each seed's object, for seeds split by the sink.
    seed_pixels: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    #: Whether each seed's object reaches the image's edge (only flooded in pass B can: a
    #: component split by the sink lies inside one chunk, away from the chunk's edges).
    seed_edge: np.ndarray = field(default_factory=lambda: np.zeros(1, bool))

    @property
    def multi(self) -> np.ndarray:
        return self.n_seeds >= 2


@dataclass
class Numbering:
    """Final ids: per component (0 = multi-seed or removed) and per seed of multi components."""

    comp_final: np.ndarray
    seed_final: np.ndarray
    count: int
    area: int


def _inside_chunk(chunking: Chunking, boxes: np.ndarray) -> np.ndarray:
    """Whether each box lies in one chunk without touching that chunk's edge rows / columns."""
    ys, xs = np.asarray(chunking.ys), np.asarray(chunking.xs)
    i = np.searchsorted(ys, boxes[:, 0], side="right") - 1
    j = np.searchsorted(xs, boxes[:, 2], side="right") - 1
    return (
        (boxes[:, 0] > ys[i]) & (boxes[:, 1] < ys[i + 1])
        & (boxes[:, 2] > xs[j]) & (boxes[:, 3] < xs[j + 1])
    )  # fmt: skip


def plan_objects(chunking: Chunking, sink: MapSink) -> Objects:
    """Join the sink's per-chunk tables into global components and seeds."""
    width = sink.scratch.shape[1]
    tables = {ij: sink.tables[chunking.bounds(*ij)] for ij in chunking.indices()}
    fg = join(chunking, {ij: t.fg for ij, t in tables.items()}, width)
    if sink.thresholds.mode == "binary":
        zeros = np.zeros(fg.count + 1, np.int64)
        return Objects(fg, None, np.zeros(1, np.int64), zeros, zeros.astype(bool))
    seeds = join(chunking, {ij: t.seeds for ij, t in tables.items()}, width)
    seeds = seeds.drop_small(sink.thresholds.min_seed)
    seed_comp = np.zeros(seeds.count + 1, np.int64)
    seed_pixels = np.zeros(seeds.count + 1, np.int64)
    for (i, j), table in tables.items():
        n = table.seeds.count
        if n:
            ids = seeds.chunk_lut(i, j, n)[1:]
            comps = fg.chunk_lut(i, j, table.fg.count)[table.seed_fg]
            seed_comp[ids[ids > 0]] = comps[ids > 0]
            if table.grown.any():
                seed_pixels[ids[ids > 0]] += table.grown[ids > 0]
    n_seeds = np.bincount(seed_comp[1:], minlength=fg.count + 1)
    n_seeds[0] = 0
    extent = np.maximum(fg.boxes[:, 1] - fg.boxes[:, 0], fg.boxes[:, 3] - fg.boxes[:, 2])
    objects = Objects(fg, seeds, seed_comp, n_seeds, (n_seeds >= 2) & (extent > MAX_EXTENT))
    objects.seed_pixels = seed_pixels
    objects.seed_edge = np.zeros(seeds.count + 1, bool)
    crossing = objects.multi & ~_inside_chunk(chunking, fg.boxes)
    for comp in np.flatnonzero(crossing):
        rows, cols = chunking.touching(*fg.boxes[comp])
        for i in rows:
            for j in cols:
                objects.work.setdefault((i, j), []).append(int(comp))
    return objects


def _windows(objects: Objects, comps: list[int], bounds, shape) -> list[tuple[tuple, list]]:
    """``(window, components)`` to read for one chunk: whole boxes, giants around the chunk."""
    boxes = objects.fg.boxes
    normal = [c for c in comps if not objects.giant[c]]
    giants = [c for c in comps if objects.giant[c]]
    out = []
    if normal:
        b = boxes[normal]
        union = (b[:, 0].min(), b[:, 1].max(), b[:, 2].min(), b[:, 3].max())
        if (union[1] - union[0]) * (union[3] - union[2]) <= WINDOW_BUDGET:
            out.append((union, normal))
        else:
            out.extend((tuple(boxes[c]), [c]) for c in normal)
    if giants:
        y0, y1, x0, x1 = bounds
        halo = GIANT_HALO
        window = (max(0, y0 - halo), min(shape[0], y1 + halo),
                  max(0, x0 - halo), min(shape[1], x1 + halo))  # fmt: skip
        out.extend((window, [c]) for c in giants)
    return out


def grow_chunk(
    ij: tuple[int, int], objects: Objects, refs: dict[str, Any], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pass B for one chunk: flood the multi-seed components that cross its edges.

    Each component is flooded alone (:func:`.maps.flood`) over its whole box, read once per
    window; the chunk keeps its own pixels (global seed ids) in ``grown`` and returns the seed
    ids found in it with their pixel counts there, and the seed ids on the image's edge.
    """
    arrays = {name: ref.open() for name, ref in refs.items()}
    y0, y1, x0, x1 = bounds = objects.fg.chunking.bounds(*ij)
    out = np.zeros((y1 - y0, x1 - x0), np.uint32)
    for (wy0, wy1, wx0, wx1), members in _windows(objects, objects.work[ij], bounds, shape):
        comp = objects.fg.window(arrays["objects"], wy0, wy1, wx0, wx1)
        seeds = objects.seeds.window(arrays["seeds"], wy0, wy1, wx0, wx1)
        relief = np.asarray(arrays["landscape"][wy0:wy1, wx0:wx1])
        for c in members:
            # the component's box inside the window (clipped to the window for giants)
            by0, by1, bx0, bx1 = objects.fg.boxes[c]
            by0, by1, bx0, bx1 = max(by0, wy0), min(by1, wy1), max(bx0, wx0), min(bx1, wx1)
            box = (slice(by0 - wy0, by1 - wy0), slice(bx0 - wx0, bx1 - wx0))
            mask = comp[box] == c
            grown = flood(relief[box], seeds[box], mask)
            cy0, cy1, cx0, cx1 = max(y0, by0), min(y1, by1), max(x0, bx0), min(x1, bx1)
            if cy0 >= cy1 or cx0 >= cx1:
                continue
            part = grown[cy0 - by0 : cy1 - by0, cx0 - bx0 : cx1 - bx0]
            core = out[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
            np.copyto(core, part, where=part > 0)
    arrays["grown"][y0:y1, x0:x1] = out
    ids, counts = np.unique(out[out > 0], return_counts=True)
    return ids, counts, np.unique(_edge_pixels(out, bounds, shape))


def _edge_pixels(block: np.ndarray, bounds, shape: tuple[int, int]) -> np.ndarray:
    """The values of ``block`` (at ``bounds``) that lie on the image's outer rows / columns."""
    y0, y1, x0, x1 = bounds
    lines = [
        block[0] if y0 == 0 else None,
        block[-1] if y1 == shape[0] else None,
        block[:, 0] if x0 == 0 else None,
        block[:, -1] if x1 == shape[1] else None,
    ]
    values = np.concatenate([np.zeros(1, block.dtype)] + [v for v in lines if v is not None])
    return values[values > 0]


def edge_floor(min_size: int) -> int:
    """Smallest object kept where it touches the image's edge: a quarter of ``min_size``.

    An object cut by the edge of the field shows only part of its area; the size floor is
    meant for specks, and most annotated objects under it are nuclei cut by the edge (22 of the
    27 under 56 px in the bundled model's train + val labels).
    """
    return max(1, min_size // 4)


def number_objects(objects: Objects, min_size: int) -> Numbering:
    """Ids ``1..N`` in raster order of components (a multi component's seeds in theirs).

    Objects under ``min_size`` are dropped, those touching the image's edge only under
    :func:`edge_floor`.
    """
    n_comp = objects.fg.count
    single = ~objects.multi
    single[0] = False
    entries_comp = np.flatnonzero(single)
    entries_seed = np.zeros(entries_comp.size, np.int64)
    sizes = objects.fg.sizes[entries_comp]
    h, w = objects.fg.chunking.shape
    boxes = objects.fg.boxes[entries_comp]
    edge = (boxes[:, 0] == 0) | (boxes[:, 1] == h) | (boxes[:, 2] == 0) | (boxes[:, 3] == w)
    if objects.seeds is not None and objects.multi.any():
        seeds = np.flatnonzero(objects.multi[objects.seed_comp])
        seeds = seeds[seeds > 0]
        entries_comp = np.concatenate([entries_comp, objects.seed_comp[seeds]])
        entries_seed = np.concatenate([entries_seed, seeds])
        sizes = np.concatenate([sizes, objects.seed_pixels[seeds]])
        edge = np.concatenate([edge, objects.seed_edge[seeds]])
    order = np.lexsort((entries_seed, entries_comp))
    floor = np.where(edge, edge_floor(min_size), max(1, min_size))
    keep = order[sizes[order] >= floor[order]]
    ids = np.arange(1, keep.size + 1, dtype=np.uint32)
    comp_final = np.zeros(n_comp + 1, np.uint32)
    seed_final = np.zeros(objects.seed_comp.size, np.uint32)
    is_seed = entries_seed[keep] > 0
    comp_final[entries_comp[keep][~is_seed]] = ids[~is_seed]
    seed_final[entries_seed[keep][is_seed]] = ids[is_seed]
    return Numbering(comp_final, seed_final, int(keep.size), int(sizes[keep].sum()))


def write_chunk(
    ij: tuple[int, int], objects: Objects, numbering: Numbering, refs: dict[str, Any], target
) -> None:
    """Pass C for one chunk: its final uint32 labels into ``target`` (an array reference)."""
    y0, y1, x0, x1 = objects.fg.chunking.bounds(*ij)
    codes = np.asarray(refs["objects"].open()[y0:y1, x0:x1])
    n = int(objects.fg.counts[ij])
    lut = numbering.comp_final[objects.fg.chunk_lut(*ij, n)]
    if objects.seeds is not None:  # codes above n: seeds of components split by the sink
        m = int(objects.seeds.counts[ij])
        lut = np.concatenate([lut, numbering.seed_final[objects.seeds.chunk_lut(*ij, m)[1:]]])
    out = lut[codes]
    if ij in objects.work:
        grown = np.asarray(refs["grown"].open()[y0:y1, x0:x1])
        out = np.where(grown > 0, numbering.seed_final[grown], out)
    target.open()[y0:y1, x0:x1] = out


RunTasks = Callable[[str, list[Any]], list[Any]]


def instances(
    chunking: Chunking, sink: MapSink, target: Any, run_tasks: RunTasks
) -> tuple[Numbering, list[str]]:
    """Write the instance labels of every chunk into ``target``; returns ids and warnings.

    ``run_tasks(stage, tasks)`` computes a list of ``dask.delayed`` tasks (in batches, with
    progress and cancel between them) and returns their results.
    """
    import dask

    thresholds: Thresholds = sink.thresholds
    objects = plan_objects(chunking, sink)
    names = ("objects", "seeds", "landscape")
    refs = {name: sink.scratch[name] for name in names if name in sink.scratch}
    shape = sink.scratch.shape
    if objects.work:
        refs["grown"] = sink.scratch.create("grown")
        task = dask.delayed(grow_chunk, pure=True)
        work_ref = dask.delayed(objects, pure=True)
        tasks = [task(ij, work_ref, refs, shape) for ij in sorted(objects.work)]
        for ids, counts, on_edge in run_tasks("grow", tasks):
            objects.seed_pixels[ids] += counts
            objects.seed_edge[on_edge] = True
    objects_ref = dask.delayed(objects, pure=True)
    numbering = number_objects(objects, thresholds.min_size)
    busy = [ij for ij in chunking.indices() if not sink.tables[chunking.bounds(*ij)].empty]
    task = dask.delayed(write_chunk, pure=True)
    numbering_ref = dask.delayed(numbering, pure=True)
    run_tasks("label", [task(ij, objects_ref, numbering_ref, refs, target) for ij in busy])
    warnings = []
    giants = int(objects.giant.sum())
    if giants:
        warnings.append(
            f"{giants} foreground region(s) extend beyond {MAX_EXTENT} px and hold several "
            f"seeds; near chunk borders their objects may differ from a whole-image run "
            f"(pass a larger chunk to avoid it)"
        )
    return numbering, warnings
