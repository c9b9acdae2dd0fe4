"""The prediction stage: every chunk's tiles predicted once, blended, merged and handed to a sink.

Chunks are taken row by row (the last two rows column by column together,
:meth:`.merger.Chunking.merge_order`). The *group* of a chunk (the tiles whose top-left pixel it
holds, :mod:`.merger`) reads its own region of the image, has its tiles predicted and returns its
accumulation split into core and spills; the chunk is then merged with the spills of its left,
upper and upper-left neighbours and given to the sink (:class:`.maps.MapSink`), so only the
previous chunk row's thin spills wait in memory, whatever the slide's height: on the automatic
chunks (multiples of the tile stride) they are under an overlap high, whatever the tiles' size.

How the groups run depends on who computes:

- a torch model on the **CPU**: everything in the calling thread. torch already fills every
  core; a second busy thread only preempts its workers (and each thread that runs a forward
  pass keeps its own allocator arena: two of them held 0.3 GB more at the peak);
- an **accelerator**: two group threads (one reads and prepares while the other's batch runs;
  the predictor's lock keeps one batch on the device at a time) and ``workers`` threads that
  merge and store finished chunks, overlapping the next forward passes;
- a host-only predictor (:class:`.predictor.ZeroCostPredictor`): ``concurrency`` group threads;
- a ``dask.distributed`` client: groups are tasks on the cluster (the predictor was scattered to
  every worker once), a few per worker in flight, merged and stored here as they arrive in order.

Tiles of empty background (:mod:`.scan`) are neither read nor predicted, and a group of them
only is never read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .merger import (
    Accumulator,
    Chunking,
    group_extent,
    group_tiles,
    merge_chunk,
    split_group,
)
from .settings import is_accelerator
from .tiling import Tile, TilePlan

Bounds = tuple[int, int, int, int]


@dataclass(frozen=True)
class Execution:
    """Where the host work runs: ``workers`` local threads, or a ``dask.distributed`` client.

    ``owned``: the run connected the client itself (from an address) and closes it at the end.
    """

    client: Any = None
    workers: int = 1
    owned: bool = False

    @property
    def distributed(self) -> bool:
        return self.client is not None

    def compute(self, tasks: list[Any]) -> list[Any]:
        """Compute ``dask.delayed`` tasks here (local threads) or on the cluster."""
        import dask

        if self.client is not None:
            return list(dask.compute(*tasks, scheduler=self.client))
        if self.workers <= 1:
            return list(dask.compute(*tasks, scheduler="sync"))
        return list(dask.compute(*tasks, scheduler="threads", num_workers=self.workers))


class RegionReader:
    """Reads regions of a dask ``YXC`` image, keeping recently decoded chunks for neighbours.

    A group's region is its chunk plus the spill of its last tiles, so it decodes up to four
    chunks of the file for little more than one chunk of pixels; the next group (to the right)
    and the next row need the same chunks again. Decoded chunks are kept, least recently used
    first out, up to ``budget`` bytes (a row of chunks of most slides), which cut the decoding
    of an 8192² zarr slide to about a third. Thread-safe.
    """

    def __init__(self, image: Any, budget: int = 128 << 20) -> None:
        import threading
        from collections import OrderedDict

        self.image, self.budget = image, budget
        self.ys = np.cumsum((0, *image.chunks[0]))
        self.xs = np.cumsum((0, *image.chunks[1]))
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def _block(self, i: int, j: int) -> np.ndarray:
        with self._lock:
            block = self._cache.get((i, j))
            if block is not None:
                self._cache.move_to_end((i, j))
                return block
        block = np.asarray(self.image.blocks[i, j].compute(scheduler="sync"))
        with self._lock:
            if (i, j) not in self._cache:
                self._cache[(i, j)] = block
                self._bytes += block.nbytes
            while self._bytes > self.budget and len(self._cache) > 1:
                self._bytes -= self._cache.popitem(last=False)[1].nbytes
        return block

    def __call__(self, extent: Bounds) -> np.ndarray:
        y0, y1, x0, x1 = extent
        rows = range(int(np.searchsorted(self.ys, y0, "right")) - 1,
                     int(np.searchsorted(self.ys, y1 - 1, "right")))  # fmt: skip
        cols = range(int(np.searchsorted(self.xs, x0, "right")) - 1,
                     int(np.searchsorted(self.xs, x1 - 1, "right")))  # fmt: skip
        out = np.empty((y1 - y0, x1 - x0, self.image.shape[2]), self.image.dtype)
        for i in rows:
            for j in cols:
                block = self._block(i, j)
                by, bx = int(self.ys[i]), int(self.xs[j])
                sy0, sy1 = max(y0, by), min(y1, by + block.shape[0])
                sx0, sx1 = max(x0, bx), min(x1, bx + block.shape[1])
                out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = block[
                    sy0 - by : sy1 - by, sx0 - bx : sx1 - bx
                ]
        return out


def read_region(image: Any, extent: Bounds) -> np.ndarray:
    """Pixels ``[y0:y1, x0:x1]`` of a numpy or dask ``YXC`` image (or a :class:`RegionReader`)."""
    if isinstance(image, RegionReader):
        return image(extent)
    y0, y1, x0, x1 = extent
    region = image[y0:y1, x0:x1]
    if hasattr(region, "compute"):
        return region.compute(scheduler="sync")
    return np.asarray(region)


def _blend_device(predictor: Any) -> Any:
    """The predictor's device when blending there pays (an accelerator with room), else None."""
    device = getattr(predictor, "device", None)
    if device is None or not is_accelerator(device.type):
        return None
    return device


def predict_group(
    region: np.ndarray | None,
    extent: Bounds,
    tiles: list[Tile],
    plan: TilePlan,
    predictor: Any,
    skip: frozenset[int] = frozenset(),
) -> Accumulator:
    """Predict ``tiles`` (raw pixels from ``region``, which covers ``extent``) and blend them.

    Tiles in ``skip`` count as background without being read or predicted.
    """
    y0, _, x0, _ = extent
    device = _blend_device(predictor)
    acc = Accumulator(extent, predictor.num_maps, plan, device)
    acc.add_background([t for t in tiles if t.index in skip])
    todo = [t for t in tiles if t.index not in skip]
    shape = (min(plan.tile, plan.shape[0]), min(plan.tile, plan.shape[1]))
    for k in range(0, len(todo), predictor.batch_size):
        batch = todo[k : k + predictor.batch_size]
        pixels = [region[t.y0 - y0 : t.y1 - y0, t.x0 - x0 : t.x1 - x0] for t in batch]
        acc.add(batch, predictor.predict(pixels, shape, to_host=device is None))
    return acc


def predict_in_memory(
    image: np.ndarray, plan: TilePlan, predictor: Any, skip: frozenset[int] = frozenset()
) -> np.ndarray:
    """Tiled probabilities ``K×H×W`` float32 of an in-memory ``YXC`` image (one group).

    On an accelerator the division happens there too: only float32 crosses to the host.
    """
    height, width = plan.shape
    acc = predict_group(np.asarray(image), (0, height, 0, width), plan.tiles(), plan,
                        predictor, skip)  # fmt: skip
    return acc.probabilities()


def group_parts(
    image: Any,
    origin: tuple[int, int],
    bounds: Bounds,
    tiles: list[Tile],
    plan: TilePlan,
    predictor: Any,
    skip: frozenset[int],
) -> tuple[np.ndarray, ...]:
    """One group as a task: read its region (unless it is all background), predict, split.

    ``image`` holds the pixels from ``origin`` on (the whole image, or only the group's region
    for a task sent to a cluster worker).
    """
    extent = group_extent(tiles, bounds)
    todo = any(t.index not in skip for t in tiles)
    y0, y1, x0, x1 = extent
    local = (y0 - origin[0], y1 - origin[0], x0 - origin[1], x1 - origin[1])
    region = read_region(image, local) if todo else None
    acc = predict_group(region, extent, tiles, plan, predictor, skip)
    return split_group(acc.to_host(), bounds, background=not todo)


class _Inline:
    """An executor that runs each call at once in the calling thread."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as err:
            future.set_exception(err)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        return None


def _group_threads(predictor: Any, execution: Execution) -> int:
    """Threads that run groups at once (0: inline in the calling thread)."""
    kind = predictor.device_type
    if kind == "host":
        return predictor.concurrency if predictor.concurrency > 1 else 0
    return 2 if is_accelerator(kind) else 0


def predict_chunks(
    image: Any,
    plan: TilePlan,
    chunking: Chunking,
    predictor: Any,
    skip: frozenset[int],
    sink: Callable[[Bounds, np.ndarray], Any],
    execution: Execution = Execution(),
    on_chunk: Callable[[Bounds, Any], Any] | None = None,
) -> None:
    """Predict every chunk of ``image`` (``YXC``) and hand its ``K×h×w`` probabilities to ``sink``.

    ``sink(bounds, probs)`` runs once per chunk (in a writer thread where that helps) and its
    return value goes to ``on_chunk(bounds, value)`` once the chunk is stored. ``predictor`` is
    a :class:`~.predictor.TilePredictor`, or on a cluster a future of one.
    """
    groups = group_tiles(plan, chunking)
    num_maps = _num_maps(predictor, execution)

    def store(bounds: Bounds, parts: tuple[Any, ...]) -> None:
        probs = merge_chunk((bounds[1] - bounds[0], bounds[3] - bounds[2]), num_maps, *parts)
        value = sink(bounds, probs)
        if on_chunk is not None:
            on_chunk(bounds, value)

    runner = _GroupRunner(image, plan, chunking, groups, predictor, skip, execution)
    kind = "distributed" if execution.distributed else _device_kind(predictor)
    inline = kind != "distributed" and not is_accelerator(kind)  # the CPU: one thread
    writer = _Inline() if inline else ThreadPoolExecutor(max(1, execution.workers))
    pending: deque[Future] = deque()
    try:
        # Spills waiting for their chunk, by the index of the chunk that made them. Chunk (i, j)
        # is the only one to read the right spill of (i, j - 1), the bottom spill of (i - 1, j)
        # and the corner spill of (i - 1, j - 1): they are dropped as it takes them, so about
        # one chunk row of spills is alive at a time.
        rights: dict[tuple[int, int], Any] = {}
        bottoms: dict[tuple[int, int], Any] = {}
        corners: dict[tuple[int, int], Any] = {}
        rows, cols = chunking.grid
        results = runner.ordered()
        for i, j in chunking.merge_order():
            core, right, bottom, corner = next(results)
            if j + 1 < cols:
                rights[i, j] = right
            if i + 1 < rows:
                bottoms[i, j] = bottom
                if j + 1 < cols:
                    corners[i, j] = corner
            del right, bottom, corner
            parts = (core, rights.pop((i, j - 1), None), bottoms.pop((i - 1, j), None),
                     corners.pop((i - 1, j - 1), None))  # fmt: skip
            pending.append(writer.submit(store, chunking.bounds(i, j), parts))
            del parts, core
            while len(pending) > 2 * max(1, execution.workers):
                pending.popleft().result()
        while pending:
            pending.popleft().result()  # re-raises a failed store
    finally:
        runner.close()
        for future in pending:
            future.cancel()
        writer.shutdown(wait=True, cancel_futures=True)


def _device_kind(predictor: Any) -> str:
    return getattr(predictor, "device_type", "cpu")


def _num_maps(predictor: Any, execution: Execution) -> int:
    if execution.distributed and not hasattr(predictor, "num_maps"):
        return int(execution.client.submit(lambda p: p.num_maps, predictor).result())
    return int(predictor.num_maps)


class _GroupRunner:
    """Computes the groups of a chunking in row-major order, a few ahead of their merge."""

    def __init__(self, image, plan, chunking, groups, predictor, skip, execution) -> None:
        self.args = (image, plan, chunking, groups, predictor, skip)
        self.execution = execution
        self.reader = RegionReader(image) if hasattr(image, "blocks") else image
        self.futures: deque[Any] = deque()
        if execution.distributed:
            self.pool, self.ahead = None, 2 * max(1, len(execution.client.nthreads()))
        else:
            threads = _group_threads(predictor, execution)
            self.pool = ThreadPoolExecutor(threads) if threads else _Inline()
            self.ahead = threads + 1 if threads else 1

    def _submit(self, i: int, j: int) -> Any:
        image, plan, chunking, groups, predictor, skip = self.args
        bounds = chunking.bounds(i, j)
        tiles = groups.get((i, j), [])
        own_skip = frozenset(t.index for t in tiles if t.index in skip)
        if self.pool is None:
            # Only the group's own region travels, with its graph culled to the chunks it reads.
            import dask

            y0, y1, x0, x1 = group_extent(tiles, bounds)
            region = image[y0:y1, x0:x1]
            region = dask.optimize(region)[0] if hasattr(region, "dask") else np.asarray(region)
            return self.execution.client.submit(
                group_parts, region, (y0, x0), bounds, tiles, plan, predictor, own_skip,
                pure=False,
            )  # fmt: skip
        return self.pool.submit(
            group_parts, self.reader, (0, 0), bounds, tiles, plan, predictor, own_skip
        )

    def ordered(self):
        chunking = self.args[2]
        order = iter(chunking.merge_order())
        for ij in order:
            self.futures.append(self._submit(*ij))
            if len(self.futures) >= self.ahead:
                break
        for ij in order:
            yield self.futures.popleft().result()
            self.futures.append(self._submit(*ij))
        while self.futures:
            yield self.futures.popleft().result()

    def close(self) -> None:
        for future in self.futures:
            future.cancel()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
