"""The few zarr operations the package needs, on zarr-python 2.18 and 3.x alike.

zarr 3 needs Python >= 3.11, so on Python 3.10 pip installs zarr 2.18, whose API differs:
no ``zarr.create_array`` / ``Group.create_array``, no ``zarr_format=`` argument, and
``compressor=`` / ``dimension_separator=`` instead of ``compressors=`` /
``chunk_key_encoding=``. Everything else we use (``zarr.open``, ``zarr.open_array``,
``zarr.open_group``, indexing, ``.attrs``, ``dask.array.from_zarr``) is common to both.

What each function writes:

- :func:`create_array` — a scratch array: zarr format 3 with zarr's default codecs on
  zarr 3, format 2 with zarr's default Blosc compressor on zarr 2 (zarr 2 cannot write 3),
  unless ``zarr_format`` asks for one.
- :func:`create_v2_group` + :func:`create_v2_array` — zarr format 2 on both, as OME-NGFF 0.4
  requires: ``/``-separated chunk keys, an explicit fill value and compressor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zarr

#: Whether the installed zarr-python is 3.x (else 2.18).
ZARR_V3: bool = int(zarr.__version__.split(".")[0]) >= 3


def create_array(
    path: str | Path,
    *,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dtype: Any,
    fill_value: Any = 0,
    overwrite: bool = False,
    zarr_format: int | None = None,
) -> Any:
    """Create an empty array store at ``path`` (a folder) with zarr's default codecs.

    Parameters
    ----------
    path : path-like
        Folder of the new array.
    shape, chunks : tuple of int
        Array and chunk shape, same number of axes (any axis order).
    dtype : dtype
        Element type.
    fill_value : scalar
        Value of chunks never written.
    overwrite : bool
        Replace an existing array at ``path``; without it an existing one is an error.
    zarr_format : {None, 2, 3}
        Storage format; ``None`` is the installed zarr's default (3 on zarr 3, 2 on zarr 2).

    Returns
    -------
    zarr.Array
        The writable array.

    Raises
    ------
    ValueError
        ``zarr_format=3`` with zarr 2 installed.
    """
    if ZARR_V3:
        return zarr.create_array(
            str(path),
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=fill_value,
            overwrite=overwrite,
            zarr_format=zarr_format or 3,
        )
    if zarr_format not in (None, 2):
        raise ValueError(
            f"zarr_format={zarr_format!r} needs zarr-python >= 3 (Python >= 3.11); "
            f"zarr {zarr.__version__} writes format 2 only: pass zarr_format=2 or None"
        )
    return zarr.create(
        shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=fill_value,
        store=str(path),
        overwrite=overwrite,
        write_empty_chunks=False,
    )


def open_for_writing(path: str | Path) -> Any:
    """Open an existing array for writing whole chunks, storing chunks of only the fill value too.

    zarr 3 compares every chunk it writes with the fill value to leave empty ones out; the
    callers here write only chunks with content, so the comparison is skipped (2-3 ms a chunk).
    """
    if ZARR_V3:
        return zarr.open_array(str(path), mode="r+", config={"write_empty_chunks": True})
    return zarr.open_array(str(path), mode="r+", write_empty_chunks=True)


def open_skipping_empty(path: str | Path) -> Any:
    """Open an existing array for writing; chunks of only the fill value are left unstored.

    zarr 3 does so by default; zarr 2 stores every chunk written unless told otherwise (the
    setting lives on the opened array, not in the store's metadata).
    """
    if ZARR_V3:
        return zarr.open_array(str(path), mode="r+")
    return zarr.open_array(str(path), mode="r+", write_empty_chunks=False)


def create_v2_group(path: str | Path) -> Any:
    """Create (replace) an empty zarr format 2 group at ``path``; returns it, writable."""
    if ZARR_V3:
        return zarr.open_group(str(path), mode="w", zarr_format=2)
    return zarr.open_group(str(path), mode="w")


def create_v2_array(
    group: Any,
    name: str,
    *,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dtype: Any,
    fill_value: Any = 0,
    compressor: Any = None,
) -> Any:
    """Create the array ``name`` in a format 2 ``group`` with ``/``-separated chunk keys.

    Parameters
    ----------
    group : zarr.Group
        A writable format 2 group (:func:`create_v2_group` or ``zarr.open_group(mode="r+")``).
    name : str
        Key of the new array in the group (NGFF levels: ``"0"``, ``"1"``, ...).
    shape, chunks : tuple of int
        Array and chunk shape.
    dtype : dtype
        Element type.
    fill_value : scalar
        Value of chunks never written.
    compressor : numcodecs.abc.Codec, optional
        The one compressor (a numcodecs codec, e.g. ``numcodecs.Blosc``); ``None`` stores raw.

    Returns
    -------
    zarr.Array
        The writable array.
    """
    if ZARR_V3:
        return group.create_array(
            name,
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=fill_value,
            compressors=compressor,
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )
    return group.create_dataset(
        name,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=fill_value,
        compressor=compressor,
        dimension_separator="/",
        write_empty_chunks=False,
    )
