"""Where a run's labels go: one label array for the whole run, filled plane by plane.

A 2-D image is a stack of one plane. :class:`LabelTarget` holds the run's labels
``[T×][Z×]Y×X`` while the planes are segmented: in memory (small results, returned or written
as TIFF), in the OME-Zarr label store of a ``.zarr`` output (the instance stage writes each
chunk straight into it), or in a hidden holding store next to the output (large TIFF outputs,
clusters). Each plane's instance stage writes through a :class:`PlaneRef`: its chunks land at
the plane's index with the plane's id offset added, so ids are unique across the stack.
:meth:`LabelTarget.finish` writes or renames the output; :meth:`LabelTarget.abort` leaves
nothing behind.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .scratch import ArrayRef, output_chunk
from .settings import IN_MEMORY_MAX_PIXELS, RETURN_MAX_PIXELS, SettingError


class PlaneWriter:
    """Writes ``Y×X`` blocks of one plane's labels into the stack, adding the id offset."""

    def __init__(self, array: Any, lead: tuple[int, ...], offset: int) -> None:
        self._array, self.lead, self.offset = array, lead, offset
        self.shape = tuple(array.shape[len(lead) :])
        self.dtype, self.ndim = np.dtype(np.uint32), 2
        self.written = 0  # object pixels written (rescaled runs count their area here)
        self._lock = threading.Lock()

    def __setitem__(self, key: tuple[slice, slice], block: Any) -> None:
        block = np.asarray(block)
        objects = block > 0
        if self.offset:
            block = np.where(objects, block.astype(np.uint32) + np.uint32(self.offset), 0)
        self._array[self.lead + tuple(key)] = block.astype(np.uint32, copy=False)
        with self._lock:
            self.written += int(np.count_nonzero(objects))


class PlaneRef:
    """A picklable reference to one plane of a :class:`LabelTarget` (``open()`` to write)."""

    def __init__(self, base: ArrayRef, lead: tuple[int, ...], offset: int) -> None:
        self.base, self.lead, self.offset = base, lead, offset

    def open(self) -> PlaneWriter:
        return PlaneWriter(self.base.open(), self.lead, self.offset)


@dataclass
class LabelTarget:
    """The labels of a whole run while it is segmented; see the module docstring.

    Attributes
    ----------
    shape : tuple of int
        ``[T, ][Z, ]Y, X`` of the labels.
    axes : str
        Their axes (``"YX"``, ``"ZYX"``, ``"TZYX"``...).
    out : Path or None
        The output (``.zarr`` or ``.tif``), ``None`` to return the labels.
    overwrite : bool
        Whether ``out`` may be replaced.
    memory : numpy.ndarray or None
        The labels, when held in memory.
    store : napari_sa2net.io.LabelStore or None
        The output's label store (``.zarr``) or the holding store.
    """

    shape: tuple[int, ...]
    axes: str
    out: Path | None
    overwrite: bool
    memory: np.ndarray | None = None
    store: Any = None

    @property
    def array(self) -> Any:
        """The labels as a readable and writable array (numpy or zarr)."""
        return self.memory if self.memory is not None else self.store.array

    @property
    def in_memory(self) -> bool:
        return self.memory is not None

    def plane(self, lead: tuple[int, ...], offset: int) -> PlaneRef:
        """Where the plane at ``lead`` writes its chunks, with ids shifted by ``offset``."""
        if self.memory is not None:
            return PlaneRef(ArrayRef(self.memory), lead, offset)
        return PlaneRef(ArrayRef(None, str(self.store.partial / "0")), lead, offset)

    def finish(self, provenance: dict[str, Any], pixel_size: Any = None,
               properties: list[dict[str, Any]] | None = None) -> Any:  # fmt: skip
        """Write / rename the output; returns its path, or the labels when returned in memory."""
        import dask
        import dask.array as da

        from ..io import write_labels_tiff

        if self.out is not None and self.out.suffix.lower() == ".zarr":
            return self.store.finalize(provenance, pixel_size, properties)
        labels = self.memory if self.memory is not None else da.from_zarr(self.store.array)
        if self.out is None:
            result = np.asarray(labels)
            self.abort()
            return result
        with dask.config.set(scheduler="threads"):
            path = write_labels_tiff(self.out, labels, provenance, overwrite=self.overwrite,
                                     pixel_size=pixel_size, axes=self.axes)  # fmt: skip
        self.abort()
        return path

    def abort(self) -> None:
        """Delete the partial store (nothing of the run is left); memory is dropped."""
        if self.store is not None and not self.store.finalized:
            self.store.abort()


def create_target(plan: Any, lead_shape: tuple[int, ...], axes: str) -> LabelTarget:
    """The :class:`LabelTarget` of a run planned as ``plan`` over planes ``lead_shape``.

    Raises a ``SettingError`` (on ``out``) when the labels are to be returned but too large.
    """
    from ..io import create_label_store

    shape = tuple(lead_shape) + tuple(plan.image_shape)
    pixels = int(np.prod(shape))
    out, overwrite = plan.out, plan.settings.overwrite
    if out is None and pixels > RETURN_MAX_PIXELS:
        raise SettingError("out", None, f"is needed: the labels have {pixels / 1e6:.0f} MP, too "
                           "large to return in memory", "labels.zarr")  # fmt: skip
    chunks = tuple(output_chunk(c) for c in plan.chunking.chunk)  # tasks write whole chunks
    zarr_out = out is not None and out.suffix.lower() == ".zarr"
    clustered = plan.execution.client is not None
    if not zarr_out and not clustered and (out is None or pixels <= IN_MEMORY_MAX_PIXELS):
        return LabelTarget(shape, axes, out, overwrite, memory=np.zeros(shape, np.uint32))
    if zarr_out:
        path, store_axes = out, axes.lower()
    else:  # a hidden holding store beside the output (or in the temporary folder)
        folder = out.parent if out is not None else Path(tempfile.gettempdir())
        path, store_axes = folder / "sa2net-labels.zarr", None
    store = create_label_store(path, shape, chunks, overwrite=overwrite if zarr_out else True,
                               axes=store_axes)  # fmt: skip
    return LabelTarget(shape, axes, out, overwrite, store=store)
