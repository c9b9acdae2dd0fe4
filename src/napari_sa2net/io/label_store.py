"""Incremental OME-Zarr label stores: write level 0 block by block, then finalize atomically.

Layout of a finished store ``NAME.zarr`` (zarr format 2, OME-NGFF 0.4, readable by
napari-ome-zarr / ome-zarr-py and by :func:`napari_sa2net.io.read_labels`)::

    NAME.zarr/.zattrs   multiscales (axes y, x, or with leading t / z of a stack),
                        image-label (with per-object properties when given),
                        napari_sa2net (provenance)
    NAME.zarr/0         level 0, uint32 labels, [T×][Z×]Y×X, chunks 1 plane × ``chunks``
    NAME.zarr/1, 2 ...  2× strided levels on Y, X ([..., ::2, ::2], so ids stay ids) until
                        the largest side is below ``PYRAMID_MIN`` pixels

Until :meth:`LabelStore.finalize` renames it, the store lives at a hidden sibling
``.NAME.zarr.partial-<pid>-<rand>`` that :meth:`LabelStore.abort` (or leaving the ``with``
block by an exception) deletes.
"""

from __future__ import annotations

import contextlib
import errno
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import check_writable, commit, disk_full_error, new_partial, remove_path
from .ngff import METADATA_KEY, ngff_attrs, to_json
from .source import stem_of

#: Levels are added while the largest side of the last one is at least this many pixels.
PYRAMID_MIN = 1024


def _create_array(group: Any, name: str, shape: tuple[int, ...], chunks: Any, dtype: Any) -> Any:
    from numcodecs import Blosc

    from ._zarr_compat import create_v2_array

    chunks = (1,) * (len(shape) - len(chunks)) + tuple(chunks)  # one plane per chunk
    chunks = tuple(min(c, n) for c, n in zip(chunks, shape))
    compressor = Blosc(cname="zstd", clevel=3, shuffle=Blosc.BITSHUFFLE)
    return create_v2_array(
        group, name, shape=shape, chunks=chunks, dtype=dtype, fill_value=0, compressor=compressor
    )


class _WriteGuard:
    """Counts writes in flight; once closed, refuses new ones and waits for the running ones.

    When one dask task fails, ``da.store`` raises while other threads may still be writing
    chunks; deleting the store then would race with them and leave a half-deleted folder.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._closed = False

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            if self._closed:
                raise RuntimeError("the label store was aborted; nothing more is written")
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def close(self, timeout: float = 120.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.wait_for(lambda: self._active == 0, timeout)


class GuardedArray:
    """Level 0 of a :class:`LabelStore` as a ``da.store`` target for the local schedulers."""

    def __init__(self, array: Any, guard: _WriteGuard) -> None:
        self._array, self._guard = array, guard
        self.shape, self.dtype, self.chunks = array.shape, array.dtype, array.chunks
        self.ndim = len(self.shape)

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._guard.writing():
            self._array[key] = value


@dataclass
class LabelStore:
    """A label store being written; see the module docstring for the layout.

    Attributes
    ----------
    final_path : Path
        Where :meth:`finalize` puts the store.
    partial : Path
        The hidden temporary store written meanwhile.
    shape : tuple of int
        Shape of level 0: ``(height, width)``, or leading plane axes first.
    chunks : tuple of int
        ``(rows, columns)`` of a chunk (one plane deep).
    dtype : numpy.dtype
        Label type (uint32 by default).
    overwrite : bool
        Whether :meth:`finalize` may replace an existing ``final_path``.
    """

    final_path: Path
    partial: Path
    shape: tuple[int, ...]
    chunks: tuple[int, int]
    dtype: np.dtype
    overwrite: bool = False
    axes: str = "yx"
    finalized: bool = field(default=False, init=False)
    _guard: _WriteGuard = field(default_factory=_WriteGuard, init=False, repr=False)

    @property
    def array(self) -> Any:
        """Level 0 as a plain writable zarr array (picklable, for ``dask.distributed``).

        Write whole chunks (two writers of one chunk overwrite each other). A distributed
        caller must stop its tasks (``client.cancel``) before :meth:`abort`.
        """
        from ._zarr_compat import open_skipping_empty

        return open_skipping_empty(self.partial / "0")

    @property
    def target(self) -> GuardedArray:
        """Level 0 as a ``da.store`` target that :meth:`abort` can stop (local schedulers)."""
        return GuardedArray(self.array, self._guard)

    def write_block(self, y: int, x: int, block: np.ndarray) -> None:
        """Write a ``Y×X`` block of labels with its top-left corner at ``(y, x)``."""
        block = np.asarray(block)
        self.target[y : y + block.shape[0], x : x + block.shape[1]] = block

    def finalize(
        self,
        metadata: Mapping[str, Any] | None = None,
        pixel_size: tuple[float, float] | None = None,
        properties: list[dict[str, Any]] | None = None,
    ) -> Path:
        """Build the pyramid, write the metadata and rename the store into place; returns it.

        ``properties`` (one dict per label, with its ``"label-value"``) go into the NGFF
        ``image-label`` metadata.
        """
        try:
            shapes = _build_pyramid(self.partial, self.chunks)
            attrs = ngff_attrs(stem_of(self.final_path), shapes, pixel_size, self.axes,
                               to_json({"p": properties or []})["p"])  # fmt: skip
            _write_attrs(self.partial, attrs, metadata, pixel_size)
            commit(self.partial, self.final_path, self.overwrite)
        except BaseException as err:
            self.abort()
            if isinstance(err, OSError) and err.errno == errno.ENOSPC:
                raise disk_full_error(self.final_path) from err
            raise
        self.finalized = True
        return self.final_path

    def abort(self) -> None:
        """Stop writes through :attr:`target`, then delete the temporary store."""
        self._guard.close()
        remove_path(self.partial)

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if not self.finalized:
            self.abort()
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise disk_full_error(self.final_path) from error


def _build_pyramid(root: Path, chunks: tuple[int, int]) -> list[tuple[int, ...]]:
    import dask.array as da
    import zarr

    group = zarr.open_group(str(root), mode="r+")
    level = group["0"]
    shapes = [tuple(level.shape)]
    while max(shapes[-1][-2:]) >= PYRAMID_MIN:
        down = da.from_zarr(level)[..., ::2, ::2]
        level = _create_array(group, str(len(shapes)), down.shape, chunks, level.dtype)
        da.store(down.rechunk(level.chunks), level, lock=False)
        shapes.append(tuple(level.shape))
    return shapes


def _write_attrs(
    root: Path,
    attrs: dict[str, Any],
    metadata: Mapping[str, Any] | None,
    pixel_size: tuple[float, float] | None,
) -> None:
    import zarr

    provenance = to_json(metadata)
    if pixel_size is not None:
        provenance.setdefault("pixel_size", [float(p) for p in pixel_size])
    attrs[METADATA_KEY] = provenance
    zarr.open_group(str(root), mode="r+").attrs.update(attrs)


def create_label_store(
    path: str | Path,
    shape: tuple[int, ...],
    chunks: tuple[int, int] = (1024, 1024),
    dtype: Any = np.uint32,
    overwrite: bool = False,
    axes: str | None = None,
) -> LabelStore:
    """Create an empty label store at a temporary sibling of ``path`` for incremental writing.

    Parameters
    ----------
    path : path-like
        Final location, e.g. ``out/slide.zarr``.
    shape : tuple of int
        ``(height, width)`` of the labels, or ``(planes..., height, width)`` of a stack.
    chunks : (int, int)
        ``(rows, columns)`` of a chunk of every level (chunks are one plane deep).
    dtype : dtype
        Integer label type; uint32 (the default) holds 4 billion objects and napari reads it.
    overwrite : bool
        Allow replacing an existing ``path`` at :meth:`LabelStore.finalize`.
    axes : str, optional
        NGFF axis names, one letter per dimension (default ``"yx"``, ``"zyx"``, ``"tzyx"``
        by the number of leading axes).

    Returns
    -------
    LabelStore
        Use as ``with create_label_store(...) as store: store.write_block(...);
        store.finalize(metadata)``; leaving the block without finalizing deletes it.

    Raises
    ------
    FileExistsError, PermissionError, ValueError
        Existing output without ``overwrite``; unwritable folder; bad shape, chunks or dtype.
    """
    from ._zarr_compat import create_v2_group

    shape = tuple(int(n) for n in shape)
    chunks = tuple(int(n) for n in chunks)
    if not 2 <= len(shape) <= 5 or min(shape) < 1 or len(chunks) != 2 or min(chunks) < 1:
        raise ValueError(
            f"need a (planes..., Y, X) shape and (Y, X) chunks, got shape={shape} chunks={chunks}"
        )
    axes = (axes or "tzyx"[-len(shape) :]).lower()
    if len(axes) != len(shape) or axes[-2:] != "yx":
        raise ValueError(f"axes {axes!r} do not fit a label store of shape {shape}")
    dtype = np.dtype(dtype)
    if dtype.kind not in "ui":
        raise ValueError(f"labels need an integer dtype, got {dtype}; use numpy.uint32")
    final = Path(path).absolute()
    check_writable(final, overwrite)
    partial = new_partial(final)
    try:
        group = create_v2_group(partial)
        _create_array(group, "0", shape, chunks, dtype)
    except BaseException:
        remove_path(partial)
        raise
    return LabelStore(final, partial, shape, chunks, dtype, overwrite, axes)  # type: ignore[arg-type]


def finalize_label_store(
    store: LabelStore,
    metadata: Mapping[str, Any] | None = None,
    pixel_size: tuple[float, float] | None = None,
    properties: list[dict[str, Any]] | None = None,
) -> Path:
    """Function form of :meth:`LabelStore.finalize`."""
    return store.finalize(metadata, pixel_size, properties)
