"""Merge: blend tile probabilities into whole-image probabilities, chunk by chunk.

Every tile of a global :class:`~.tiling.TilePlan` belongs to the output chunk that holds its
top-left pixel. One *group* task per chunk predicts its tiles and accumulates ``weight * prob`` and
``weight`` (float64, so that a single contribution divides back to the exact float32 value) over
the chunk plus the spill of its last tiles into the chunks below and to the right. The
accumulation is returned in four parts — core, right spill, bottom spill, corner — so a *merge*
task needs only its own core and the three spills that reach into it, and nothing larger than a
spill stays in memory between tasks. Each tile is predicted exactly once and the result does not
depend on the chunking (up to float64 summation order).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..normalization import Normalization
from .background import FLAT_RANGE, flat_tiles
from .predictor import Predictor, pad_tiles
from .tiling import Tile, TilePlan

__all__ = [
    "FLAT_RANGE",
    "Chunking",
    "accumulate_group",
    "add_batch_torch",
    "background_probabilities",
    "describe",
    "device_type",
    "group_extent",
    "group_tiles",
    "merge_chunk",
    "predict_in_memory",
    "split_group",
]


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

    def bounds(self, i: int, j: int) -> tuple[int, int, int, int]:
        return self.ys[i], self.ys[i + 1], self.xs[j], self.xs[j + 1]

    def dask_chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(np.diff(self.ys).tolist()), tuple(np.diff(self.xs).tolist())


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


def background_probabilities(num_classes: int) -> np.ndarray:
    """Class probabilities of an empty tile: background 1 (class 0), or 0 for a 1-class map."""
    probs = np.zeros(num_classes, np.float32)
    if num_classes > 1:
        probs[0] = 1.0
    return probs


def accumulate_group(
    region: np.ndarray,
    extent: tuple[int, int, int, int],
    tiles: list[Tile],
    plan: TilePlan,
    predictor: Predictor,
    stats: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    skip: frozenset[int] = frozenset(),
    keep_on_device: bool = False,
) -> Any:
    """Predict ``tiles`` and accumulate them over ``extent``.

    Parameters
    ----------
    region : np.ndarray
        Raw image pixels of ``extent``, ``YXC``.
    extent : tuple of int
        ``(y0, y1, x0, x1)`` of ``region`` in image coordinates.
    stats : tuple of np.ndarray
        Per-channel normalization ``(low, high)`` of the whole image.
    skip : frozenset of int
        Indices of tiles that are flat background (:func:`.background.flat_tiles`): they are
        neither read nor predicted and count as background probability.
    keep_on_device : bool
        On an accelerator, return the accumulation as a tensor where it was made (the device,
        when it fits there) instead of copying it to the host.

    Returns
    -------
    np.ndarray or torch.Tensor
        float64 ``(K + 1)×h×w``: ``sum(weight * prob)`` per class, then ``sum(weight)``.
    """
    y0, y1, x0, x1 = extent
    acc = np.zeros((num_classes + 1, y1 - y0, x1 - x0), np.float64)
    shape = (min(plan.tile, plan.shape[0]), min(plan.tile, plan.shape[1]))
    size = predictor.batch_size
    batches = [tiles[k : k + size] for k in range(0, len(tiles), size)]

    def prepare(batch: list[Tile]) -> tuple[np.ndarray | None, list[bool]]:
        flat = [t.index in skip for t in batch]
        todo = [
            Normalization.apply(region[t.y0 - y0 : t.y1 - y0, t.x0 - x0 : t.x1 - x0], *stats)
            for t, f in zip(batch, flat)
            if not f
        ]
        return (pad_tiles(todo, shape) if todo else None), flat

    if not batches:
        return acc
    if device_type(predictor) == "cpu":
        # The forward pass already occupies every core; a reader thread only preempts torch's
        # OpenMP workers (benchmarks/bench_inference.py on 2 cores: pipeline ÷ bare forward
        # 0.78 with the thread, 0.91-0.98 without).
        for batch in batches:
            arrays, flat = prepare(batch)
            probs = predictor.predict_batch(arrays) if arrays is not None else None
            _add_batch(acc, extent, batch, flat, probs, plan, num_classes)
        return acc
    device_acc = _device_accumulator(acc, predictor)
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(prepare, batches[0])
        for k, batch in enumerate(batches):
            arrays, flat = pending.result()
            if k + 1 < len(batches):
                pending = reader.submit(prepare, batches[k + 1])  # overlaps the forward pass
            if device_acc is None:
                probs = predictor.predict_batch(arrays) if arrays is not None else None
                _add_batch(acc, extent, batch, flat, probs, plan, num_classes)
            else:
                probs = predictor.predict_batch(arrays, False) if arrays is not None else None
                add_batch_torch(device_acc, extent, batch, flat, probs, plan, num_classes)
    if device_acc is None:
        return acc
    return device_acc if keep_on_device else device_acc.cpu().numpy()


def _device_accumulator(acc: np.ndarray, predictor: Any) -> Any:
    """A float64 zero accumulator on the predictor's device, or None where it would not fit.

    Blending on the device keeps the GPU busy: the host only prepares and queues batches, and
    one copy of the finished group comes back instead of every tile's probabilities.
    """
    import torch

    device = predictor.device
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if acc.nbytes > free // 4:
            return None
    return torch.zeros(acc.shape, dtype=torch.float64, device=device)


def add_batch_torch(
    acc: Any,
    extent: tuple[int, int, int, int],
    batch: list[Tile],
    flat: list[bool],
    probs: Any,
    plan: TilePlan,
    num_classes: int,
) -> None:
    """Add a batch's weighted probabilities and weights into ``acc`` (a tensor on any device).

    ``acc`` is float64 ``(K + 1)×h×w`` over ``extent``; ``probs`` the batch's ``N×K×H×W``
    probabilities of its non-flat tiles, in order; flat tiles add background probability.
    """
    import torch

    y0, _, x0, _ = extent
    device = acc.device
    empty = torch.from_numpy(background_probabilities(num_classes).astype(np.float64)).to(device)
    k = 0
    for tile, is_flat in zip(batch, flat):
        h, w = tile.shape
        wy, wx = (torch.from_numpy(f.copy()).to(device) for f in plan.window_factors(tile))
        weight = torch.outer(wy, wx).double()  # float32 product, as np.outer in window()
        ys, xs = slice(tile.y0 - y0, tile.y1 - y0), slice(tile.x0 - x0, tile.x1 - x0)
        if is_flat:
            acc[:num_classes, ys, xs] += empty[:, None, None] * weight
        else:
            acc[:num_classes, ys, xs] += probs[k, :, :h, :w].double() * weight
            k += 1
        acc[num_classes, ys, xs] += weight


def device_type(predictor: Any) -> str:
    """``"cuda"``, ``"cpu"``, ...: the predictor's device type (``"cpu"`` when it has none)."""
    device = getattr(predictor, "device", None)
    return getattr(device, "type", "cpu")


def _add_batch(
    acc: np.ndarray,
    extent: tuple[int, int, int, int],
    batch: list[Tile],
    flat: list[bool],
    probs: np.ndarray | None,
    plan: TilePlan,
    num_classes: int,
) -> None:
    """:func:`add_batch_torch` on host arrays (zero-copy tensor views of them)."""
    import torch

    add_batch_torch(
        torch.from_numpy(acc),
        extent,
        batch,
        flat,
        None if probs is None else torch.from_numpy(probs),
        plan,
        num_classes,
    )


def split_group(acc: np.ndarray, bounds: tuple[int, int, int, int]) -> tuple[np.ndarray, ...]:
    """Split an accumulation into ``(core, right, bottom, corner)`` at the chunk's far edges.

    The spills are copies: a view would keep the whole accumulator alive until the chunk row
    below has merged them, which made peak memory grow with the slide's width. The core is a
    view (it is merged at once, and copying it would briefly hold the accumulator twice).
    """
    height, width = bounds[1] - bounds[0], bounds[3] - bounds[2]
    return (
        acc[:, :height, :width],
        acc[:, :height, width:].copy(),
        acc[:, height:, :width].copy(),
        acc[:, height:, width:].copy(),
    )


def merge_chunk(
    shape: tuple[int, int],
    num_classes: int,
    core: np.ndarray | None,
    left: np.ndarray | None = None,
    top: np.ndarray | None = None,
    top_left: np.ndarray | None = None,
) -> np.ndarray:
    """Probabilities ``K×h×w`` float32 of one chunk from its core and its neighbours' spills.

    ``left`` is the right spill of the chunk to the left, ``top`` the bottom spill of the chunk
    above, ``top_left`` the corner spill of the chunk diagonally above-left. A writable float64
    ``core`` of exactly the chunk's shape is summed into in place (it is not used afterwards).
    """
    full = (num_classes + 1, *shape)
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
        if part is not None and part.size:
            h, w = min(part.shape[1], shape[0]), min(part.shape[2], shape[1])
            acc[:, :h, :w] += part[:, :h, :w]
    weight = acc[num_classes]
    if not np.all(weight > 0):
        raise RuntimeError("a pixel is covered by no tile; the tile plan is inconsistent")
    probs = acc[:num_classes]
    np.divide(probs, weight, out=probs)
    return probs.astype(np.float32)


def predict_in_memory(
    image: np.ndarray,
    plan: TilePlan,
    predictor: Predictor,
    stats: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    flat_range: float | None = FLAT_RANGE,
) -> np.ndarray:
    """Tiled probabilities ``K×H×W`` float32 of an in-memory ``YXC`` image (one chunk).

    Tiles whose normalized values span less than ``flat_range`` count as background without
    being predicted (:func:`.background.flat_tiles`); ``None`` predicts every tile.
    """
    height, width = plan.shape
    image = np.asarray(image)
    acc = accumulate_group(
        image,
        (0, height, 0, width),
        plan.tiles(),
        plan,
        predictor,
        stats,
        num_classes,
        flat_tiles(image, plan, stats, flat_range, scheduler="sync"),
        keep_on_device=True,
    )
    if isinstance(acc, np.ndarray):
        return merge_chunk((height, width), num_classes, acc)
    # Divided on the device: only float32 probabilities cross to the host.
    weight = acc[num_classes]
    if not bool((weight > 0).all()):
        raise RuntimeError("a pixel is covered by no tile; the tile plan is inconsistent")
    return (acc[:num_classes] / weight).float().cpu().numpy()


def describe(plan: TilePlan, chunking: Chunking) -> dict[str, Any]:
    """Tiling facts for provenance."""
    return {**plan.to_dict(), "chunks": [int(chunking.ys[1]), int(chunking.xs[1])]}
