"""Merge: blend tile probabilities into whole-image probabilities, chunk by chunk.

Every tile of a global :class:`~.tiling.TilePlan` belongs to the output chunk that holds its
top-left pixel. One *group* per chunk accumulates ``weight * prob`` and ``weight`` (float64, so
that a single contribution divides back to the exact float32 value) over the chunk plus the
spill of its last tiles into the chunks below and to the right (:class:`Accumulator`). The
accumulation is split into four parts — core, right spill, bottom spill, corner — so merging a
chunk needs only its own core and the three spills that reach into it, and nothing larger than a
spill waits in memory between groups. On chunks that are a multiple of the tile stride (the
default, :func:`.sizing.default_chunk`) a spill is at most an overlap deep. Each tile is
predicted exactly once and the result does not depend on the chunking (up to float64
summation order).

This module knows nothing of models: a predictor (:mod:`.predictor`) maps tiles to
probabilities; the merger only blends what it is given, on the host or on the predictor's device.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .settings import is_accelerator
from .tiling import EPS_WEIGHT, Tile, TilePlan


@dataclass(frozen=True)
class Chunking:
    """Output chunk boundaries: ``ys[i]:ys[i + 1]`` × ``xs[j]:xs[j + 1]``."""

    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @classmethod
    def regular(cls, shape: tuple[int, int], chunk: int) -> Chunking:
        height, width = shape
        return cls(
            (*tuple(range(0, height, chunk)), height), (*tuple(range(0, width, chunk)), width)
        )

    @property
    def grid(self) -> tuple[int, int]:
        return len(self.ys) - 1, len(self.xs) - 1

    @property
    def shape(self) -> tuple[int, int]:
        return self.ys[-1], self.xs[-1]

    @property
    def chunk(self) -> tuple[int, int]:
        """Edge of the regular chunks ``(rows, columns)``."""
        return self.ys[1] - self.ys[0], self.xs[1] - self.xs[0]

    def bounds(self, i: int, j: int) -> tuple[int, int, int, int]:
        return self.ys[i], self.ys[i + 1], self.xs[j], self.xs[j + 1]

    def indices(self) -> list[tuple[int, int]]:
        """Chunk indices in row-major order."""
        rows, cols = self.grid
        return [(i, j) for i in range(rows) for j in range(cols)]

    def merge_order(self) -> list[tuple[int, int]]:
        """Chunk indices in the order the pipeline merges them: row by row, but the last two
        rows column by column together.

        Each chunk comes after its left, upper and upper-left neighbours (whose spills it
        reads). The bottom spills of one chunk row wait for the whole next row; on chunks that
        are a multiple of the tile stride they are under an overlap high, except above the last
        row: the last tiles of a column are moved inward to end on the image's edge, off the
        stride, and may reach a tile's height into it. Taking the last two rows together merges
        each of those spills as soon as it is made.
        """
        rows, cols = self.grid
        if rows < 2:
            return self.indices()
        head = [(i, j) for i in range(rows - 2) for j in range(cols)]
        return head + [(i, j) for j in range(cols) for i in (rows - 2, rows - 1)]

    def dask_chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(np.diff(self.ys).tolist()), tuple(np.diff(self.xs).tolist())

    def touching(self, y0: int, y1: int, x0: int, x1: int) -> tuple[range, range]:
        """Chunk rows and columns that the box ``[y0:y1, x0:x1]`` overlaps."""
        rows = range(
            int(np.searchsorted(self.ys, y0, side="right")) - 1,
            int(np.searchsorted(self.ys, y1 - 1, side="right")),
        )
        cols = range(
            int(np.searchsorted(self.xs, x0, side="right")) - 1,
            int(np.searchsorted(self.xs, x1 - 1, side="right")),
        )
        return rows, cols


def group_tiles(plan: TilePlan, chunking: Chunking) -> dict[tuple[int, int], list[Tile]]:
    """Tiles of ``plan`` keyed by the chunk ``(i, j)`` that holds their top-left pixel."""
    groups: dict[tuple[int, int], list[Tile]] = {}
    for tile in plan:
        i = int(np.searchsorted(chunking.ys, tile.y0, side="right")) - 1
        j = int(np.searchsorted(chunking.xs, tile.x0, side="right")) - 1
        groups.setdefault((i, j), []).append(tile)
    return groups


def group_extent(
    tiles: list[Tile], bounds: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    """Region ``(y0, y1, x0, x1)`` a group accumulates into: its chunk plus its tiles' spill."""
    y0, y1, x0, x1 = bounds
    return (
        y0,
        max([y1] + [t.y1 for t in tiles]),
        x0,
        max([x1] + [t.x1 for t in tiles]),
    )


def background_probabilities(num_maps: int) -> np.ndarray:
    """Maps of an empty tile: background 1 (class 0) and 0 elsewhere (centre map included), or
    0 for a 1-class map."""
    probs = np.zeros(num_maps, np.float32)
    if num_maps > 1:
        probs[0] = 1.0
    return probs


class Accumulator:
    """Weighted sums ``(K + 1)×h×w`` float64 of tile probabilities over an ``extent``.

    Parameters
    ----------
    extent : tuple of int
        ``(y0, y1, x0, x1)`` in image coordinates.
    num_maps : int
        ``K``; the last plane holds the summed weights.
    plan : TilePlan
        Gives each tile's blending window.
    device : torch.device, optional
        Blend there (a GPU keeps busy; only the finished group crosses to the host); default
        the host, through zero-copy tensor views of a numpy array.
    """

    def __init__(
        self, extent: tuple[int, int, int, int], num_maps: int, plan: TilePlan, device=None
    ) -> None:
        import torch

        y0, y1, x0, x1 = extent
        self.extent, self.num_maps, self.plan = extent, num_maps, plan
        shape = (num_maps + 1, y1 - y0, x1 - x0)
        if device is None or not is_accelerator(torch.device(device).type):
            self._host = np.zeros(shape, np.float64)
            self.sums = torch.from_numpy(self._host)
        else:
            self._host = None
            self.sums = torch.zeros(shape, dtype=torch.float64, device=device)
        self._empty = torch.from_numpy(background_probabilities(num_maps).astype(np.float64))
        self._empty = self._empty.to(self.sums.device)[:, None, None]

    def add(self, tiles: list[Tile], probs: Any) -> None:
        """Add the ``N×K×H×W`` probabilities (numpy or tensor) of ``tiles`` (in order)."""
        import torch

        if isinstance(probs, np.ndarray):
            probs = torch.from_numpy(probs)
        probs = probs.to(self.sums.device)
        for tile, tile_probs in zip(tiles, probs):
            h, w = tile.shape
            self._add(tile, tile_probs[:, :h, :w])

    def add_background(self, tiles: list[Tile]) -> None:
        """Add ``tiles`` as empty background (they were not predicted)."""
        for tile in tiles:
            self._add(tile, None)

    def _add(self, tile: Tile, probs: Any) -> None:
        import torch

        y0, _, x0, _ = self.extent
        device = self.sums.device
        (ry, fy), (rx, fx) = (_support(f) for f in self.plan.window_factors(tile))
        # Where this tile's weight is only EPS_WEIGHT a neighbour's is ~1 (every pixel has a
        # tile that weighs it fully): leaving those margins out changes a blend by < 1e-6 and
        # skips a third of the work.
        weight = torch.outer(*(torch.from_numpy(f.copy()).to(device) for f in (fy, fx))).double()
        ys = slice(tile.y0 - y0 + ry.start, tile.y0 - y0 + ry.stop)
        xs = slice(tile.x0 - x0 + rx.start, tile.x0 - x0 + rx.stop)
        target = self.sums[: self.num_maps, ys, xs]
        if probs is None:
            target += self._empty * weight
        else:
            target.addcmul_(probs[:, ry, rx], weight)  # float32 probabilities, float64 sums
        self.sums[self.num_maps, ys, xs] += weight

    def to_host(self) -> np.ndarray:
        """The sums as a float64 numpy array (a view when blended on the host)."""
        return self._host if self._host is not None else self.sums.cpu().numpy()

    def probabilities(self) -> np.ndarray:
        """``K×h×w`` float32 blended probabilities (divided where the sums are)."""
        weight = self.sums[self.num_maps]
        if not bool((weight > 0).all()):
            raise RuntimeError("a pixel is covered by no tile; the tile plan is inconsistent")
        return (self.sums[: self.num_maps] / weight).float().cpu().numpy()


@lru_cache(maxsize=256)
def _support_of(key: bytes, length: int) -> tuple[int, int]:
    factor = np.frombuffer(key, np.float32)
    inside = np.flatnonzero(factor > EPS_WEIGHT)
    return (int(inside[0]), int(inside[-1]) + 1) if inside.size else (0, length)


def _support(factor: np.ndarray) -> tuple[slice, np.ndarray]:
    """The span of a 1-D blending ramp above ``EPS_WEIGHT``, and the ramp over it."""
    start, stop = _support_of(factor.tobytes(), factor.size)
    return slice(start, stop), np.ascontiguousarray(factor[start:stop])


class BackgroundSpill:
    """The spill of a group none of whose tiles was predicted, held as its weight plane alone.

    Such a group's sums are its tiles' blending weights times the empty tile's maps
    (:func:`background_probabilities`): its class-0 plane received exactly the additions of its
    weight plane (the same values in the same order, so the two are equal bit for bit) and its
    other planes stayed 0. One ``h×w`` float64 plane therefore holds the whole ``(K + 1)×h×w``
    spill exactly, a quarter of the memory for 3 classes; on a slide that is mostly glass most
    spills alive at once are of this kind.
    """

    def __init__(self, weight: np.ndarray, num_maps: int) -> None:
        self.weight, self.num_maps = weight, num_maps
        self.shape = (num_maps + 1, *weight.shape)
        self.size = weight.size * (num_maps + 1)

    def add_to(self, acc: np.ndarray) -> None:
        """Add this spill to the top-left corner of the sums ``acc`` (``(K + 1)×H×W``)."""
        h, w = min(self.weight.shape[0], acc.shape[1]), min(self.weight.shape[1], acc.shape[2])
        weight = self.weight[:h, :w]
        # The empty tile's maps are 1 or 0: 1 × weight adds the weight itself, as the tile did.
        for plane in np.flatnonzero(background_probabilities(self.num_maps)):
            acc[plane, :h, :w] += weight
        acc[self.num_maps, :h, :w] += weight

    def expand(self) -> np.ndarray:
        """The spill as the full ``(K + 1)×h×w`` sums it stands for."""
        full = np.zeros(self.shape, np.float64)
        self.add_to(full)
        return full


def split_group(
    acc: np.ndarray, bounds: tuple[int, int, int, int], background: bool = False
) -> tuple[Any, ...]:
    """Split an accumulation into ``(core, right, bottom, corner)`` at the chunk's far edges.

    The spills are copies: a view would keep the whole accumulator alive until the chunk row
    below has merged them, which made peak memory grow with the slide's width. Each is cut
    after its last row and column that any tile weighs (a tile's outer ``3/8`` of the overlap
    adds nothing, :meth:`Accumulator._add`): the rest is zeros, and a chunk merges a spill into
    its top-left corner. The core is a view (it is merged at once, and copying it would briefly
    hold the accumulator twice). ``background``: no tile of the group was predicted; the spills
    are :class:`BackgroundSpill`.
    """
    height, width = bounds[1] - bounds[0], bounds[3] - bounds[2]
    num_maps = acc.shape[0] - 1
    parts: list[Any] = []
    for ys, xs in (
        (slice(None, height), slice(width, None)),
        (slice(height, None), slice(None, width)),
        (slice(height, None), slice(width, None)),
    ):
        weighed = acc[num_maps, ys, xs] != 0
        rows, cols = np.flatnonzero(weighed.any(axis=1)), np.flatnonzero(weighed.any(axis=0))
        h, w = (rows[-1] + 1, cols[-1] + 1) if rows.size else (0, 0)
        spill = acc[:, ys, xs][:, :h, :w]
        if background:
            parts.append(BackgroundSpill(spill[num_maps].copy(), num_maps))
        else:
            parts.append(spill.copy())
    return (acc[:, :height, :width], *parts)


def merge_chunk(
    shape: tuple[int, int],
    num_maps: int,
    core: np.ndarray | None,
    left: np.ndarray | BackgroundSpill | None = None,
    top: np.ndarray | BackgroundSpill | None = None,
    top_left: np.ndarray | BackgroundSpill | None = None,
) -> np.ndarray:
    """Probabilities ``K×h×w`` float32 of one chunk from its core and its neighbours' spills.

    ``left`` is the right spill of the chunk to the left, ``top`` the bottom spill of the chunk
    above, ``top_left`` the corner spill of the chunk diagonally above-left. A writable float64
    ``core`` of exactly the chunk's shape is summed into in place (it is not used afterwards).
    """
    full = (num_maps + 1, *shape)
    if (
        core is not None
        and core.shape == full
        and core.dtype == np.float64
        and core.flags.writeable
    ):
        acc, parts = core, (left, top, top_left)
    else:
        acc, parts = np.zeros(full, np.float64), (core, left, top, top_left)
    for part in parts:
        if part is None or not part.size:
            continue
        if isinstance(part, BackgroundSpill):
            part.add_to(acc)
            continue
        h, w = min(part.shape[1], shape[0]), min(part.shape[2], shape[1])
        acc[:, :h, :w] += part[:, :h, :w]
    weight = acc[num_maps]
    if not np.all(weight > 0):
        raise RuntimeError("a pixel is covered by no tile; the tile plan is inconsistent")
    probs = np.empty((num_maps, *shape), np.float32)
    np.divide(acc[:num_maps], weight, out=probs, casting="same_kind")  # rounded once
    return probs
