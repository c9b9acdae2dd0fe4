"""A live preview of a running segmentation: a Labels layer that fills in chunk by chunk.

The engine announces, as ``Progress.payload`` of its ``"tile"`` events, a
``ClassPreview`` (what is coming) and then one ``StoredChunk`` per stored chunk, which carries
that chunk's classes (0 background, 1 nucleus, 2 nucleus interior) as the job's thresholds decide.
The job's events pass through :meth:`LivePreview.wrap` in the worker thread, which writes each
chunk's classes into a small uint8 pyramid of its own on disk. The GUI thread shows that pyramid
as a Labels layer read lazily by napari (only the visible region of one level), refreshed at most
once per :data:`REFRESH_SECONDS`. The preview owns its store, so its lifetime does not depend on
the job: the store is deleted only after the layer has been given the final labels or removed.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from ._layers import yx_transform

LOG = logging.getLogger(__name__)
#: At most one preview refresh per this many seconds (a refresh re-reads the visible region).
REFRESH_SECONDS = 1.0
#: Pyramid levels are halved until the largest side is below this (as the label writer does).
LEVEL_MIN_SIDE = 1024
CHUNK = 512


def level_shapes(shape: tuple[int, int], multiscale: bool) -> list[tuple[int, int]]:
    """``(H, W)`` of each preview level: level ``k`` is the grid strided by ``2**k``."""
    shapes = [tuple(int(s) for s in shape)]
    while multiscale and max(shapes[-1]) >= LEVEL_MIN_SIDE:
        shapes.append(tuple(-(-s // 2) for s in shapes[-1]))
    return shapes


def preview_transform(image_layer: Any, info: Any) -> dict[str, tuple[float, ...]]:
    """Scale and translate of the prediction grid over ``image_layer`` (rescaled runs too)."""
    base = yx_transform(image_layer)
    steps = [i / g for i, g in zip(info.image_shape, info.shape)]
    scale = tuple(s * step for s, step in zip(base["scale"], steps))
    translate = tuple(
        t + s * (step - 1) / 2 for t, s, step in zip(base["translate"], base["scale"], steps)
    )
    return {"scale": scale, "translate": translate}


class PreviewStore:
    """A uint8 preview pyramid in a temporary folder: written by the worker, read by napari.

    Parameters
    ----------
    info : inference.results.ClassPreview
        Mode and grid of the running job.
    multiscale : bool
        Add levels strided by 2, 4, ... (``Y×X`` each) until the largest side is below
        :data:`LEVEL_MIN_SIDE`; else level 0 only.
    """

    def __init__(self, info: Any, multiscale: bool) -> None:
        from ..io._zarr_compat import create_array

        self.info = info
        self.shapes = level_shapes(info.shape, multiscale)
        self.folder = Path(tempfile.mkdtemp(prefix="sa2net-preview-"))
        try:
            self._levels = [
                create_array(
                    self.folder / str(k),
                    shape=shape,
                    chunks=(min(CHUNK, shape[0]), min(CHUNK, shape[1])),
                    dtype="uint8",
                    fill_value=0,
                )
                for k, shape in enumerate(self.shapes)
            ]
        except BaseException:
            self.delete()
            raise

    def write(self, bounds: tuple[int, int, int, int], classes: np.ndarray) -> None:
        """Write a chunk's classes at ``(y0, y1, x0, x1)`` into every level (worker thread)."""
        y0, _, x0, _ = bounds
        for k, level in enumerate(self._levels):
            step = 2**k
            r0, c0 = -(-y0 // step), -(-x0 // step)
            part = classes[r0 * step - y0 :: step, c0 * step - x0 :: step]
            if part.size:
                level[r0 : r0 + part.shape[0], c0 : c0 + part.shape[1]] = part

    def layer_data(self) -> Any:
        """Read-only zarr arrays for napari: a list of levels, or the one level."""
        import zarr

        levels = [
            zarr.open_array(str(self.folder / str(k)), mode="r") for k in range(len(self.shapes))
        ]
        return levels if len(levels) > 1 else levels[0]

    def delete(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def forget_cached_levels(layer: Any) -> None:
    """Drop napari's cached copy of a multiscale layer's coarsest level.

    napari (0.7 to 0.9) keeps the coarsest level of a 2D pyramid in memory for thumbnails and
    serves it again whenever the view is zoomed out that far, so a refresh alone showed an
    empty preview over a whole slide. The cache is private; without it this does nothing.
    """
    materializer = getattr(layer, "_level_materializer", None)
    if materializer is not None and hasattr(materializer, "cache_clear"):
        materializer.cache_clear()


class LivePreview:
    """The preview of one segment job: its store (worker side) and its layer (GUI side).

    Parameters
    ----------
    viewer : napari.Viewer
    image_layer : napari.layers.Image
        The segmented layer; the preview lies over it.
    name : str
        Layer name while running (the final labels' name plus " (preview)").
    multiscale : bool
        Build a pyramid (levels halved while the largest side is at least
        :data:`LEVEL_MIN_SIDE`), so napari reads only the visible region at screen resolution.
    """

    def __init__(self, viewer: Any, image_layer: Any, name: str, multiscale: bool) -> None:
        from qtpy.QtCore import QTimer

        self.viewer = viewer
        self.image_layer = image_layer
        self.name = name
        self.multiscale = multiscale
        self.store: PreviewStore | None = None
        self.layer: Any = None
        self.chunks = 0
        self._failed = False
        self._last_refresh = 0.0
        self._interval = REFRESH_SECONDS
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)

    # -- worker thread ---------------------------------------------------------------------
    def wrap(self, job: Any) -> Generator[Any, None, Any]:
        """Pass ``job``'s events through, storing each announced chunk before it is yielded."""
        try:
            while True:
                try:
                    event = next(job)
                except StopIteration as stop:
                    return stop.value
                self._take(getattr(event, "payload", None))
                yield event
        finally:
            job.close()  # a cancel closes this generator: the job cleans up in this thread

    def _take(self, payload: Any) -> None:
        from ..inference.results import ClassPreview, StoredChunk

        if self._failed:
            return
        try:
            if isinstance(payload, ClassPreview) and self.store is None:
                self.store = PreviewStore(payload, self.multiscale)
            elif isinstance(payload, StoredChunk) and self.store is not None:
                self.store.write(payload.bounds, payload.classes)
                self.chunks += 1
        except Exception:  # a preview problem (disk full, ...) must never stop the job
            LOG.warning("SA2-Net segment: live preview disabled", exc_info=True)
            self._failed = True

    # -- GUI thread ------------------------------------------------------------------------
    def on_event(self, event: Any) -> None:
        """Add the layer when the job announces its classes; refresh as chunks land."""
        from ..inference.results import StoredChunk

        if self.store is None or self._failed:
            return
        if self.layer is None:
            self.layer = self.viewer.add_labels(
                self.store.layer_data(),
                name=self.name,
                multiscale=len(self.store.shapes) > 1,
                **preview_transform(self.image_layer, self.store.info),
            )
            self._last_refresh = time.monotonic()
        elif isinstance(event.payload, StoredChunk) and not self._timer.isActive():
            wait = self._interval - (time.monotonic() - self._last_refresh)
            self._timer.start(max(0, int(wait * 1000)))

    def alive(self) -> bool:
        """Whether the preview layer is (still) in the viewer."""
        return self.layer is not None and self.layer in self.viewer.layers

    def refresh(self) -> None:
        """Re-read the visible part of the preview (napari slices only what is on screen)."""
        started = time.monotonic()
        if self.alive():
            forget_cached_levels(self.layer)
            self.layer.refresh()
        # A slow refresh (a big single-level preview is read whole) spaces the next ones out,
        # so the GUI thread never spends more than about a fifth of its time on them.
        self._interval = max(REFRESH_SECONDS, 5 * (time.monotonic() - started))
        self._last_refresh = time.monotonic()

    def close(self, remove_layer: bool) -> None:
        """Stop refreshing, remove the layer if asked (cancel, error), delete the store."""
        self._timer.stop()
        if remove_layer and self.alive():
            self.viewer.layers.remove(self.layer)
        self.layer = None
        if self.store is not None:
            self.store.delete()
            self.store = None


__all__ = ["LivePreview", "PreviewStore", "forget_cached_levels", "level_shapes"]
