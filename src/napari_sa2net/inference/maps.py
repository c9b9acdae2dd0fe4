"""From each chunk's probabilities to the maps the instance stage needs (the pipeline's sink).

As soon as a chunk's probabilities are merged, :meth:`MapSink.put` thresholds them and keeps
only what post-processing reads, so the float32 probabilities never reach storage:

- ``fg``: uint32 connected components (8-connectivity) of the foreground, numbered per chunk;
- ``seeds``: the same for the interior (seed) pixels, instance mode only;
- ``landscape``: the background probability as uint16 (``round(p * 65535)``), the relief the
  watershed floods, instance mode only.

That is 10 bytes a pixel before compression (mostly zeros and 65535s) instead of 12 of float32
probabilities, and the foreground / seed labelling of the instance stage is already done.
Each chunk also leaves a :class:`ChunkTable` of its components (sizes, boxes, first pixels and
the ids along its four edges), from which :mod:`.instances` joins them across chunks without
reading the maps again.

Where the maps live is a :class:`Scratch`: numpy arrays for small images, zarr arrays in a
folder (next to the output, so cluster workers see them) for large ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

EIGHT = np.ones((3, 3), bool)
#: Quantization of the background probability in the ``landscape`` map.
LANDSCAPE_MAX = 65535
#: Fill values of the maps (chunks never written read as these).
FILL = {"fg": 0, "seeds": 0, "landscape": LANDSCAPE_MAX, "grown": 0, "labels": 0}
DTYPES = {"fg": np.uint32, "seeds": np.uint32, "landscape": np.uint16, "grown": np.uint32,
          "labels": np.uint32}  # fmt: skip


@dataclass(frozen=True)
class Thresholds:
    """How probabilities become objects (see :mod:`.postprocess`)."""

    mode: str
    interior: float = 0.5
    foreground: float = 0.5
    min_size: int = 16

    @property
    def min_seed(self) -> int:
        """Seeds smaller than this are noise inside an object and dropped."""
        return max(1, self.min_size // 4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "interior_threshold": self.interior,
            "foreground_threshold": self.foreground,
            "min_size": self.min_size,
        }


def classify(probs: np.ndarray, thresholds: Thresholds) -> tuple[np.ndarray, ...]:
    """``(foreground, interior, landscape)`` of ``K×h×w`` probabilities (binary: no last two)."""
    if thresholds.mode == "binary":
        return (np.asarray(probs[-1]) > thresholds.foreground, None, None)
    background = np.asarray(probs[0], np.float32)
    foreground = (1.0 - background) > thresholds.foreground
    interior = (np.asarray(probs[1]) > thresholds.interior) & foreground
    landscape = np.rint(np.clip(background, 0.0, 1.0) * LANDSCAPE_MAX).astype(np.uint16)
    return foreground, interior, landscape


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


def label_components(
    mask: np.ndarray, y0: int, x0: int, width: int
) -> tuple[np.ndarray, Components]:
    """8-connected components of a chunk's mask at ``(y0, x0)`` of an image ``width`` wide."""
    labels, n = ndi.label(mask, structure=EIGHT)
    labels = labels.astype(np.uint32, copy=False)
    edges = (labels[0].copy(), labels[-1].copy(), labels[:, 0].copy(), labels[:, -1].copy())
    if n == 0:
        empty = np.zeros(0, np.int64)
        return labels, Components(empty, empty, np.zeros((0, 4), np.int64), edges)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.int64)
    boxes = np.empty((n, 4), np.int64)
    keys = np.empty(n, np.int64)
    for k, (rows, cols) in enumerate(ndi.find_objects(labels)):
        top = labels[rows.start, cols]
        first = cols.start + int(np.argmax(top == k + 1))
        boxes[k] = (rows.start + y0, rows.stop + y0, cols.start + x0, cols.stop + x0)
        keys[k] = (rows.start + y0) * width + first + x0
    return labels, Components(sizes, keys, boxes, edges)


@dataclass
class ChunkTable:
    """What one stored chunk leaves for the instance stage (pass A of :mod:`.instances`)."""

    bounds: tuple[int, int, int, int]
    fg: Components
    seeds: Components | None = None
    #: Chunk-local foreground id of each seed's component.
    seed_fg: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def empty(self) -> bool:
        return self.fg.count == 0


class ArrayRef:
    """A scratch array by reference: a numpy array (threads) or a zarr path (any process)."""

    def __init__(self, array: Any, path: str | None = None) -> None:
        self._array, self.path = (None, path) if path is not None else (array, None)

    def open(self) -> Any:
        if self.path is None:
            return self._array
        import zarr

        return zarr.open_array(self.path, mode="r+")

    def __getstate__(self) -> dict[str, Any]:
        if self.path is None:
            return self.__dict__
        return {"_array": None, "path": self.path}


class Scratch:
    """The scratch maps of one run: numpy arrays, or zarr arrays under ``folder``.

    Zarr arrays are chunked like the pipeline and compressed with Blosc lz4 (fast; the maps
    are mostly constant). Arrays are created on first use and referenced by name.
    """

    def __init__(self, shape: tuple[int, int], chunks: tuple[int, int], folder: Path | None):
        self.shape, self.chunks, self.folder = shape, chunks, folder
        self._refs: dict[str, ArrayRef] = {}

    @property
    def on_disk(self) -> bool:
        return self.folder is not None

    def create(self, name: str) -> ArrayRef:
        dtype, fill = DTYPES[name], FILL[name]
        if self.folder is None:
            ref = ArrayRef(np.full(self.shape, fill, dtype))
        else:
            from numcodecs import Blosc

            from ..io._zarr_compat import create_v2_array, create_v2_group

            group = create_v2_group(self.folder / name)
            chunks = tuple(min(c, s) for c, s in zip(self.chunks, self.shape))
            codec = Blosc(cname="lz4", clevel=1, shuffle=Blosc.SHUFFLE)
            create_v2_array(group, "0", shape=self.shape, chunks=chunks, dtype=dtype,
                            fill_value=fill, compressor=codec)  # fmt: skip
            ref = ArrayRef(None, str(self.folder / name / "0"))
        self._refs[name] = ref
        return ref

    def __getitem__(self, name: str) -> ArrayRef:
        return self._refs[name]

    def __contains__(self, name: str) -> bool:
        return name in self._refs


class MapSink:
    """Receives each merged chunk's probabilities, stores its maps and keeps its table.

    Safe to call from several threads for different chunks (each writes only its chunk).
    """

    def __init__(self, scratch: Scratch, thresholds: Thresholds) -> None:
        self.scratch, self.thresholds = scratch, thresholds
        names = ("fg",) if thresholds.mode == "binary" else ("fg", "seeds", "landscape")
        self.arrays = {name: scratch.create(name).open() for name in names}
        self.tables: dict[tuple[int, int, int, int], ChunkTable] = {}

    def put(self, bounds: tuple[int, int, int, int], probs: np.ndarray) -> np.ndarray:
        """Store the maps of the chunk ``bounds`` from its ``K×h×w`` probabilities.

        Returns the chunk's classes as uint8 (0 background, 1 object, 2 seed) for a preview.
        """
        y0, y1, x0, x1 = bounds
        width = self.scratch.shape[1]
        foreground, interior, landscape = classify(probs, self.thresholds)
        fg, fg_parts = label_components(foreground, y0, x0, width)
        table = ChunkTable(bounds, fg_parts)
        classes = foreground.astype(np.uint8)
        if fg_parts.count:
            self.arrays["fg"][y0:y1, x0:x1] = fg
        if interior is not None:
            seeds, seed_parts = label_components(interior, y0, x0, width)
            first = seed_parts.keys - (y0 * width + x0)
            rows, cols = first // width, first % width
            table.seeds, table.seed_fg = seed_parts, fg[rows, cols].astype(np.int64)
            classes += interior
            if fg_parts.count:
                self.arrays["seeds"][y0:y1, x0:x1] = seeds
                self.arrays["landscape"][y0:y1, x0:x1] = landscape
        self.tables[bounds] = table
        return classes
