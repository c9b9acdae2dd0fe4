"""From each chunk's probabilities to the maps the instance stage needs (the pipeline's sink).

As soon as a chunk's probabilities are merged, :meth:`MapSink.put` thresholds them, labels the
chunk and keeps only what the instance stage (:mod:`.instances`) reads, so float32
probabilities never reach storage:

- ``objects``: uint32 codes of the chunk's objects-to-be. A foreground component (8-connected)
  has code = its local id; a component that lies inside the chunk (touching none of its edges)
  and holds two or more seeds is already split here, by the same watershed as a whole-image run
  (it is all in memory, and its seeds are all its seeds), and its pixels have code
  ``n_components + local seed id``;
- ``seeds`` and ``landscape``: only for components that touch the chunk's edges and hold a
  seed (they may continue in the next chunk): the local seed ids and the relief (the background
  probability, or with a centre map the mean of it and ``1 - centre``) as uint16
  (``round(p * 65535)``), the markers and relief of their watershed later.

Each chunk also leaves a :class:`ChunkTable` of its components (sizes, boxes, first pixels and
the ids along its four edges) and of the regions grown here, from which :mod:`.instances` joins
them across chunks without reading the maps again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .scratch import LANDSCAPE_MAX, Scratch

EIGHT = np.ones((3, 3), bool)


@dataclass(frozen=True)
class Thresholds:
    """How probabilities become objects (see :mod:`.postprocess`).

    ``seeds``: ``"interior"`` seeds objects where the interior class exceeds ``interior``
    (3 maps); ``"centre"`` where the model's centre map (its 4th map) does, and floods them over
    the mean of the background probability and ``1 - centre``, whose ridges run between
    touching nuclei.
    """

    mode: str
    interior: float = 0.5
    foreground: float = 0.5
    min_size: int = 16
    seeds: str = "interior"

    def __post_init__(self) -> None:
        if self.seeds not in SEED_MAPS:
            raise ValueError(f"seeds must be one of {SEED_MAPS}, got {self.seeds!r}")

    @property
    def min_seed(self) -> int:
        """Seeds smaller than this are noise inside an object and dropped."""
        return max(1, self.min_size // 4)

    @property
    def num_maps(self) -> int:
        """Probability maps these thresholds read: 1, 3, or 4 with a centre map."""
        if self.mode == "binary":
            return 1
        return 4 if self.seeds == "centre" else 3

    def to_dict(self) -> dict[str, Any]:
        return {
            "interior_threshold": self.interior,
            "foreground_threshold": self.foreground,
            "min_size": self.min_size,
            "seeds": self.seeds,
        }


#: Where seeds come from: the interior class, or the centre map of a model that has one.
SEED_MAPS = ("interior", "centre")


def classify(probs: np.ndarray, thresholds: Thresholds) -> tuple[np.ndarray, ...]:
    """``(foreground, seeds, landscape)`` of ``K×h×w`` probabilities (binary: no last two)."""
    if thresholds.mode == "binary":
        return (np.asarray(probs[-1]) > thresholds.foreground, None, None)
    background = np.asarray(probs[0], np.float32)
    foreground = (1.0 - background) > thresholds.foreground
    if thresholds.seeds == "centre":
        centre = np.asarray(probs[3], np.float32)
        seeds = (centre > thresholds.interior) & foreground
        relief = 0.5 * (background + (1.0 - centre))
    else:
        seeds = (np.asarray(probs[1]) > thresholds.interior) & foreground
        relief = background
    landscape = np.rint(np.clip(relief, 0.0, 1.0) * LANDSCAPE_MAX).astype(np.uint16)
    return foreground, seeds, landscape


@dataclass
class Components:
    """The connected components of one mask inside one chunk (ids ``1..n`` in raster order).

    ``boxes`` are ``(y0, y1, x0, x1)`` and ``keys`` the flat index ``y * W + x`` of each
    component's first pixel, both in image coordinates; ``edges`` the ids along the chunk's
    top row, bottom row, left column and right column.
    """

    sizes: np.ndarray
    keys: np.ndarray
    boxes: np.ndarray
    edges: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

    @property
    def count(self) -> int:
        return int(self.sizes.size)

    def on_edges(self) -> np.ndarray:
        """``count + 1`` bools: whether each id touches the chunk's edges (index 0 unused)."""
        touching = np.zeros(self.count + 1, bool)
        touching[np.concatenate(self.edges)] = True
        touching[0] = False
        return touching


def label_components(
    mask: np.ndarray, y0: int, x0: int, width: int, boxes: bool = True
) -> tuple[np.ndarray, Components]:
    """8-connected components of a chunk's mask at ``(y0, x0)`` of an image ``width`` wide.

    ``boxes=False`` leaves the boxes out (zeros), for masks whose boxes nobody reads.
    """
    labels, n = ndi.label(mask, structure=EIGHT)
    labels = labels.astype(np.uint32, copy=False)
    edges = (labels[0].copy(), labels[-1].copy(), labels[:, 0].copy(), labels[:, -1].copy())
    if n == 0:
        empty = np.zeros(0, np.int64)
        return labels, Components(empty, empty, np.zeros((0, 4), np.int64), edges)
    flat = labels.ravel()
    where = np.flatnonzero(flat)
    ids = flat[where].astype(np.int64)
    sizes = np.bincount(ids, minlength=n + 1)[1:]
    first = np.full(n + 1, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, ids, where)
    w = labels.shape[1]
    keys = (first[1:] // w + y0) * width + first[1:] % w + x0
    found = np.zeros((n, 4), np.int64)
    if boxes:
        slices = ndi.find_objects(labels)
        found = np.array([(r.start, r.stop, c.start, c.stop) for r, c in slices], np.int64)
        found += (y0, y0, x0, x0)
    return labels, Components(sizes, keys, found, edges)


@dataclass
class ChunkTable:
    """What one stored chunk leaves for the instance stage."""

    bounds: tuple[int, int, int, int]
    fg: Components
    seeds: Components | None = None
    #: Chunk-local foreground id of each seed's component.
    seed_fg: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: Pixels grown here from each local seed (seeds of components split in this chunk).
    grown: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: Whether seeds and relief of components touching the chunk's edges were stored.
    edge_maps: bool = False

    @property
    def empty(self) -> bool:
        return self.fg.count == 0


def flood(relief: np.ndarray, markers: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The watershed of ONE component (``mask``) from its seeds, over the component's box.

    skimage's watershed breaks ties between equal seed pixels by the layout of its heap, which
    depends on every seed in the call: two components flooded in one call can change each
    other's split lines on plateaus (saturated probabilities make many). Flooded alone, a
    component gets the same labels in any window that holds it, so every chunking agrees.
    """
    from skimage.segmentation import watershed

    return watershed(relief, markers * mask, mask=mask, connectivity=2)


def grow_inside(
    bounds: tuple[int, int, int, int],
    fg: np.ndarray,
    parts: Components,
    seeds: np.ndarray,
    seed_parts: Components,
    seed_fg: np.ndarray,
    landscape: np.ndarray,
    min_seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Split the components inside the chunk that hold 2+ seeds: ``(objects, grown sizes)``.

    Such a component and all its seeds lie in this chunk, so its seeds' sizes are their true
    sizes and its watershed (:func:`flood`) is the one a whole-image run gives.
    ``objects`` codes: component id, or ``n + seed id`` for the pixels of split components.
    """
    n, m = parts.count, seed_parts.count
    kept = seed_parts.sizes >= min_seed
    inside = ~parts.on_edges()
    counts = np.bincount(seed_fg[kept & inside[seed_fg]], minlength=n + 1)
    split = np.flatnonzero(counts >= 2)
    grown = np.zeros(m + 1, np.int64)
    if split.size == 0:
        return fg, grown[1:]
    markers = np.r_[0, np.where(kept, np.arange(1, m + 1), 0)].astype(np.uint32)
    objects = fg.copy()
    for comp, (y0, y1, x0, x1) in zip(split, parts.boxes[split - 1]):
        box = (slice(y0 - bounds[0], y1 - bounds[0]), slice(x0 - bounds[2], x1 - bounds[2]))
        mask = fg[box] == comp
        regions = flood(landscape[box], markers[seeds[box]], mask)
        objects[box][mask] = n + regions[mask]
        grown += np.bincount(regions[mask], minlength=m + 1)
    return objects, grown[1:]


class MapSink:
    """Receives each merged chunk's probabilities, stores its maps and keeps its table.

    Safe to call from several threads for different chunks (each writes only its chunk).
    """

    def __init__(self, scratch: Scratch, thresholds: Thresholds) -> None:
        self.scratch, self.thresholds = scratch, thresholds
        names = ("objects",) if thresholds.mode == "binary" else ("objects", "seeds", "landscape")
        self.arrays = {name: scratch.create(name).open() for name in names}
        self.tables: dict[tuple[int, int, int, int], ChunkTable] = {}

    def put(self, bounds: tuple[int, int, int, int], probs: np.ndarray) -> np.ndarray:
        """Store the maps of the chunk ``bounds`` from its ``K×h×w`` probabilities.

        Returns the chunk's classes as uint8 (0 background, 1 object, 2 seed) for a preview.
        """
        y0, y1, x0, x1 = bounds
        width = self.scratch.shape[1]
        foreground, interior, landscape = classify(probs, self.thresholds)
        fg, parts = label_components(foreground, y0, x0, width)
        table = ChunkTable(bounds, parts)
        self.tables[bounds] = table
        classes = foreground.astype(np.uint8)
        if interior is None:  # binary: the components are the objects
            if parts.count:
                self.arrays["objects"][y0:y1, x0:x1] = fg
            return classes
        seeds, seed_parts = label_components(interior, y0, x0, width, boxes=False)
        first = seed_parts.keys - (y0 * width + x0)
        seed_fg = fg[first // width, first % width].astype(np.int64)
        table.seeds, table.seed_fg = seed_parts, seed_fg
        classes += interior
        if not parts.count:
            return classes
        objects, table.grown = grow_inside(bounds, fg, parts, seeds, seed_parts, seed_fg,
                                           landscape, self.thresholds.min_seed)  # fmt: skip
        self.arrays["objects"][y0:y1, x0:x1] = objects
        edge = parts.on_edges()
        if edge.any():  # components that may go on in a neighbour: kept for their watershed
            keep = edge[fg]
            self.arrays["seeds"][y0:y1, x0:x1] = np.where(keep, seeds, 0)
            self.arrays["landscape"][y0:y1, x0:x1] = np.where(keep, landscape, LANDSCAPE_MAX)
            table.edge_maps = True
        return classes
