"""Lazy, picklable array-likes over TIFF image data, for ``dask.array.from_array``.

Each holds only the path (and layout) when pickled and reopens the file in the process that
reads, so dask graphs ship to ``dask.distributed`` workers. Three readers, fastest first:

- :class:`MemmapArray` — uncompressed contiguous data (ImageJ, one-strip files): a memory map.
- :class:`TiledPageArray` — one tiled page per level (SVS, OME-TIFF slides, pyramids): reads and
  decodes exactly the tiles under a window, without the zarr layer (about 2.5× faster).
- :class:`TiffArray` — anything else, through tifffile's zarr store.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np


def cannot_read(path: Path, err: BaseException) -> ValueError:
    """The error for a file that tifffile cannot read."""
    return ValueError(f"cannot read {path}: {err}; is the file complete and a TIFF?")


def _shaped_series_usable(tif: Any) -> bool:
    """Whether tifffile's reading of a JSON ``"shape"`` description fits the pages."""
    try:
        for series in tif.series:
            if not all(type(n) is int and n > 0 for n in series.shape):
                return False
            pixels = sum(int(np.prod(page.shape)) for page in series.pages if page is not None)
            if series.kind == "shaped" and int(np.prod(series.shape)) != pixels:
                return False  # a shape beyond the pages' data ("truncated" files) or a typo
        return bool(tif.series)
    except Exception:  # tifffile raises many types for a description it cannot use
        return False


def open_tiff_file(path: Path) -> Any:
    """``tifffile.TiffFile`` of ``path``, ignoring a JSON ``"shape"`` it cannot use.

    tifffile takes any JSON description containing ``"shape":`` for its own "shaped" format,
    and a ``"shape"`` key of other metadata (or a damaged one) then breaks or distorts
    ``tif.series``; such files are read page by page instead (``is_shaped=False``).
    """
    import tifffile

    tif = tifffile.TiffFile(path)
    if not tif.is_shaped or _shaped_series_usable(tif):
        return tif
    tif.close()
    return tifffile.TiffFile(path, is_shaped=False)


class TiffArray:
    """One level of one series of a TIFF file as a lazy, picklable array-like.

    Parameters
    ----------
    path : Path
        The TIFF file.
    series, level : int
        tifffile series index and pyramid level (0 = full resolution).
    """

    def __init__(self, path: Path, series: int = 0, level: int = 0) -> None:
        self.path, self.series, self.level = Path(path), series, level
        self._zarr: Any = None
        self._tif: Any = None
        self._lock = threading.Lock()
        z = self._open()
        self.shape: tuple[int, ...] = tuple(z.shape)
        self.dtype = np.dtype(z.dtype)
        self.ndim = len(self.shape)
        self.file_chunks: tuple[int, ...] = tuple(z.chunks)

    def _open(self) -> Any:
        with self._lock:
            if self._zarr is None:
                import zarr

                self._tif = open_tiff_file(self.path)
                store = self._tif.series[self.series].aszarr(level=self.level)
                self._zarr = zarr.open(store, mode="r")
            return self._zarr

    def close(self) -> None:
        """Close the file; the next read reopens it."""
        with self._lock:
            if self._tif is not None:
                self._tif.close()
            self._tif = self._zarr = None

    def __del__(self) -> None:
        tif = getattr(self, "_tif", None)
        if tif is not None:
            tif.close()

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self._open()[key])
        except Exception as err:  # a tile that cannot be decoded
            raise cannot_read(self.path, err) from err

    def __getstate__(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "series": self.series,
            "level": self.level,
            "shape": self.shape,
            "dtype": self.dtype,
            "ndim": self.ndim,
            "file_chunks": self.file_chunks,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._zarr, self._tif, self._lock = None, None, threading.Lock()


class MemmapArray:
    """Uncompressed, contiguous TIFF image data as a lazy, picklable array-like.

    Such files (ImageJ, most uncompressed writers) are often one strip per page, so the zarr
    store would make the whole image one chunk; a memory map reads any window instead.
    """

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: str) -> None:
        self.path, self.offset, self.shape = Path(path), int(offset), tuple(shape)
        self._file_dtype = np.dtype(dtype)
        self.dtype = self._file_dtype.newbyteorder("=")
        self.ndim = len(self.shape)
        self.file_chunks = (1,) * self.ndim
        self._map: Any = None

    def __getitem__(self, key: Any) -> np.ndarray:
        if self._map is None:
            self._map = np.memmap(self.path, self._file_dtype, "r", self.offset, self.shape)
        return np.array(self._map[key], dtype=self.dtype)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_map": None}


def _window(key: Any, shape: tuple[int, ...]) -> tuple[tuple[slice, slice], tuple[Any, ...]]:
    """Split an index into a Y/X bounding window (unit steps) and the index to apply after."""
    key = key if isinstance(key, tuple) else (key,)
    key = key + (slice(None),) * (len(shape) - len(key))
    bounds, rest = [], []
    for axis in (0, 1):
        part = key[axis]
        if isinstance(part, slice):
            start, stop, step = part.indices(shape[axis])
            if step == 1:
                bounds.append(slice(start, max(start, stop)))
                rest.append(slice(None))
                continue
            bounds.append(slice(0, shape[axis]))
            rest.append(part)
        else:
            index = int(part) % shape[axis]
            bounds.append(slice(index, index + 1))
            rest.append(0)
    return (bounds[0], bounds[1]), (*rest, *key[2:])


class TiledPageArray:
    """One tiled, chunky page of a TIFF (a pyramid level) read tile by tile.

    Parameters
    ----------
    path : Path
        The TIFF file.
    series, level : int
        tifffile series and pyramid level; the level must be a single tiled page whose series
        axes are ``YX`` or ``YXS`` (see :func:`TiledPageArray.supports`).
    """

    def __init__(self, path: Path, series: int = 0, level: int = 0) -> None:
        self.path, self.series, self.level = Path(path), series, level
        self._page: Any = None
        self._tif: Any = None
        self._lock = threading.Lock()
        page = self._open()
        self.shape: tuple[int, ...] = tuple(page.shape)
        self.dtype = np.dtype(page.dtype)
        self.ndim = len(self.shape)
        self.tile = (int(page.tilelength), int(page.tilewidth))
        self.file_chunks = self.tile + self.shape[2:]

    @staticmethod
    def supports(level_series: Any) -> bool:
        """Whether a tifffile series level can be read by this class."""
        page = level_series.keyframe
        return (
            len(level_series.pages) == 1
            and page.is_tiled
            and page.imagedepth == 1
            and (page.samplesperpixel == 1 or page.planarconfig == 1)
            and level_series.axes in ("YX", "YXS")
            and tuple(level_series.shape) == tuple(page.shape)
        )

    def _open(self) -> Any:
        with self._lock:
            if self._page is None:
                self._tif = open_tiff_file(self.path)
                self._tif.filehandle.set_lock(True)
                self._page = self._tif.series[self.series].levels[self.level].keyframe
            return self._page

    def _tile(self, page: Any, index: int) -> np.ndarray | None:
        count = page.databytecounts[index]
        if not count:
            return None  # a sparse tile: zeros
        handle = self._tif.filehandle
        with handle.lock:
            handle.seek(page.dataoffsets[index])
            data = handle.read(count)
        segment = page.decode(data, index, jpegtables=page.jpegtables, jpegheader=page.jpegheader)
        return segment[0].reshape((*self.tile, -1))

    def _read(self, ys: slice, xs: slice) -> np.ndarray:
        page, (th, tw) = self._open(), self.tile
        samples = self.shape[2] if self.ndim == 3 else 1
        out = np.zeros((ys.stop - ys.start, xs.stop - xs.start, samples), self.dtype)
        across = -(-self.shape[1] // tw)
        for ty in range(ys.start // th, -(-ys.stop // th)):
            for tx in range(xs.start // tw, -(-xs.stop // tw)):
                tile = self._tile(page, ty * across + tx)
                if tile is None:
                    continue
                y0, y1 = max(ys.start, ty * th), min(ys.stop, (ty + 1) * th)
                x0, x1 = max(xs.start, tx * tw), min(xs.stop, (tx + 1) * tw)
                out[y0 - ys.start : y1 - ys.start, x0 - xs.start : x1 - xs.start] = tile[
                    y0 - ty * th : y1 - ty * th, x0 - tx * tw : x1 - tx * tw
                ]
        return out if self.ndim == 3 else out[..., 0]

    def __getitem__(self, key: Any) -> np.ndarray:
        (ys, xs), rest = _window(key, self.shape)
        try:
            return self._read(ys, xs)[rest]
        except (ValueError, OSError, RuntimeError, IndexError) as err:
            raise cannot_read(self.path, err) from err

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_page": None, "_tif": None, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __del__(self) -> None:
        tif = getattr(self, "_tif", None)
        if tif is not None:
            tif.close()
