"""Tile plans: which overlapping windows cover an image, and how they are blended (no torch).

A :class:`TilePlan` places tiles of ``tile × tile`` pixels with ``overlap`` pixels shared between
neighbours on a grid whose origin and stride are multiples of :data:`ALIGN` (the network pools
four times by 2). The network is translation-equivariant only for shifts on that grid, so tiles
placed on it reproduce the whole-image prediction. The last row and column of tiles start on the
grid too and may therefore be up to ``ALIGN - 1`` pixels shorter than ``tile``; the predictor
reflect-pads them at the bottom/right exactly like the model pads a whole image. An image smaller
than one tile is a single tile of the image's own size.

Each tile's contribution is weighted by a separable window that is ``eps`` within 3/8 of the
overlap of every edge facing a neighbour tile, rises as a squared sine over the middle quarter of
the overlap and is 1 inside. Pixels therefore come (up to ``eps``) from tiles in which they lie at
least ``3 * overlap / 8`` away from the tile edge (:func:`halo_of`), where the network saw enough
context; the short ramp still hides any residual step between neighbours. Edges on the
image border are not tapered. The window is strictly positive, so the blended normalization never
divides by zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: Tile origins and strides are multiples of this (the network's total pooling factor).
ALIGN = 16
#: Smallest blending weight; keeps the normalization finite everywhere.
EPS_WEIGHT = 1e-6


def halo_of(overlap: int) -> int:
    """Context (pixels) each blended pixel had in the tile it came from: 3/8 of the overlap."""
    return 3 * overlap // 8


def overlap_for_halo(halo: int) -> int:
    """Smallest grid-aligned overlap whose :func:`halo_of` is at least ``halo``."""
    return -(-max(0, int(halo)) * 8 // 3 // ALIGN) * ALIGN if halo > 0 else 0


@dataclass(frozen=True)
class Tile:
    """One window of a plan: pixel rows ``y0:y1`` and columns ``x0:x1`` of the image."""

    index: int
    y0: int
    y1: int
    x0: int
    x1: int
    taper: tuple[bool, bool, bool, bool]  # top, bottom, left, right face a neighbour

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


def _check_sizes(tile: int, overlap: int) -> None:
    if not isinstance(tile, (int, np.integer)) or tile < ALIGN or tile % ALIGN:
        fix = max(ALIGN, round(int(tile) / ALIGN) * ALIGN) if tile else 256
        raise ValueError(
            f"tile={tile!r} must be a positive multiple of {ALIGN} (the network pools four "
            f"times by 2); use tile={fix}"
        )
    if not isinstance(overlap, (int, np.integer)) or overlap < 0 or overlap % ALIGN:
        fix = max(0, round(int(overlap) / ALIGN) * ALIGN) if overlap else 0
        raise ValueError(
            f"overlap={overlap!r} must be a non-negative multiple of {ALIGN} so that every tile "
            f"starts on the network's pooling grid; use overlap={fix}"
        )
    if overlap >= tile:
        raise ValueError(
            f"overlap={overlap} must be smaller than tile={tile}; use a larger tile "
            f"(e.g. tile={overlap * 2 + ALIGN * 8}) or a smaller overlap "
            f"(e.g. overlap={tile // 4 // ALIGN * ALIGN})"
        )


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Grid-aligned starts covering ``0:length``; the last tile may end before ``start + tile``."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        # Shift the last tile inward, but keep it on the grid: it then ends at the image border
        # and is at most ALIGN - 1 pixels shorter than `tile`.
        last = -(-(length - tile) // ALIGN) * ALIGN
        if last > starts[-1]:
            starts.append(last)
    return starts


@dataclass(frozen=True)
class TilePlan:
    """Overlapping, grid-aligned tiles covering a ``(height, width)`` image.

    Parameters
    ----------
    shape : tuple of int
        Image size ``(H, W)`` in pixels (the ``YX`` axes).
    tile : int
        Tile edge in pixels, a multiple of :data:`ALIGN`.
    overlap : int
        Pixels shared by neighbouring tiles, a multiple of :data:`ALIGN`, smaller than ``tile``.
    """

    shape: tuple[int, int]
    tile: int
    overlap: int

    def __post_init__(self) -> None:
        height, width = (int(s) for s in self.shape)
        if height < 1 or width < 1:
            raise ValueError(f"image shape {self.shape} is empty; an image needs at least 1×1 px")
        _check_sizes(self.tile, self.overlap)
        object.__setattr__(self, "shape", (height, width))

    @property
    def starts_y(self) -> list[int]:
        return _starts(self.shape[0], self.tile, self.overlap)

    @property
    def starts_x(self) -> list[int]:
        return _starts(self.shape[1], self.tile, self.overlap)

    @property
    def grid(self) -> tuple[int, int]:
        """Number of tile rows and columns."""
        return len(self.starts_y), len(self.starts_x)

    def __len__(self) -> int:
        rows, cols = self.grid
        return rows * cols

    def __iter__(self) -> Iterator[Tile]:
        height, width = self.shape
        ys, xs = self.starts_y, self.starts_x
        index = 0
        for i, y0 in enumerate(ys):
            for j, x0 in enumerate(xs):
                taper = (i > 0, i < len(ys) - 1, j > 0, j < len(xs) - 1)
                yield Tile(
                    index, y0, min(y0 + self.tile, height), x0, min(x0 + self.tile, width), taper
                )
                index += 1

    def tiles(self) -> list[Tile]:
        return list(self)

    def window(self, tile: Tile) -> np.ndarray:
        """Blending weights of one tile, float32 ``YX`` of ``tile.shape``, all ``> 0``."""
        return np.outer(*self.window_factors(tile))

    def window_factors(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        """The 1-D float32 ramps whose outer product is :meth:`window` (read-only, cached)."""
        top, bottom, left, right = tile.taper
        wy = _ramp(tile.shape[0], self.overlap, top, bottom)
        wx = _ramp(tile.shape[1], self.overlap, left, right)
        return wy, wx

    def to_dict(self) -> dict[str, object]:
        return {"tile": self.tile, "overlap": self.overlap, "grid": list(self.grid)}


@lru_cache(maxsize=64)
def _ramp(length: int, overlap: int, start: bool, end: bool) -> np.ndarray:
    """1-D window: ``eps`` on the outer 3/8 of ``overlap``, sin² over its middle quarter."""
    weights = np.ones(length, np.float64)
    if overlap > 0:
        d = np.arange(length, dtype=np.float64) + 0.5
        lo, span = overlap * 3.0 / 8.0, overlap / 4.0
        rise = np.sin(0.5 * np.pi * np.clip((d - lo) / span, 0.0, 1.0)) ** 2
        if start:
            weights *= rise
        if end:
            weights *= rise[::-1]
    weights = np.maximum(weights, EPS_WEIGHT).astype(np.float32)
    weights.flags.writeable = False
    return weights
