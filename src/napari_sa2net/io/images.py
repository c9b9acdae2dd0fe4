"""``open_image``: an array, a TIFF-family file, Zarr or OME-Zarr to a lazy ``YXC`` image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .source import Channel, ImageSource, Plane, guess_axes, normalize_axes, plane_axes, to_yxc

#: File suffixes read through tifffile (anything else that is a file is tried as TIFF too).
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf2", ".tf8", ".svs", ".ndpi", ".scn", ".qptiff")
#: Chunk size (pixels along Y and X) given to in-memory numpy arrays.
ARRAY_CHUNK = 1024


def _open_array(
    array: Any, *, axes: str | None, channel: Channel, plane: Plane, name: str
) -> ImageSource:
    import dask.array as da

    if not isinstance(array, da.Array):
        array = np.asarray(array)
        if array.ndim not in (2, 3, 4, 5):
            raise ValueError(f"expected a 2-D to 5-D image array, got shape {array.shape}")
    file_axes = axes.upper() if axes else guess_axes(array.shape)
    yxc_axes = normalize_axes(file_axes, array.shape)
    if not isinstance(array, da.Array):
        chunks = tuple(
            ARRAY_CHUNK if a in "YX" else (n if a == "C" else 1)
            for a, n in zip(yxc_axes, array.shape)
        )
        array = da.from_array(array, chunks=chunks)
    n_channels = array.shape[yxc_axes.index("C")] if "C" in yxc_axes else 1
    rgb = n_channels in (3, 4) and array.dtype == np.uint8
    data, rgb = to_yxc(array, yxc_axes, channel=channel, plane=plane, rgb=rgb)
    planes = plane_axes(yxc_axes, array.shape)
    return ImageSource(data, file_axes, None, name, None, rgb, planes)


def open_image(
    source: Any,
    *,
    channel: Channel = None,
    level: int = 0,
    plane: Plane = None,
    axes: str | None = None,
    series: int = 0,
    name: str | None = None,
) -> ImageSource:
    """Open an image lazily as a dask array with axes ``YXC``.

    Parameters
    ----------
    source : str, Path, numpy.ndarray, dask.array.Array or ImageSource
        A TIFF / BigTIFF / OME-TIFF / SVS file (tiled and pyramidal files included), a zarr
        array, an OME-Zarr multiscale image, or an array. Arrays without ``axes`` are ``YX``,
        ``YXC`` (last axis ≤ 4 entries) or ``CYX`` (first axis ≤ 4 entries); anything else
        needs ``axes``.
    channel : int or list of int, optional
        Channel(s) to keep, in the source's channel order. Default: all, except that the alpha
        channel of an RGBA image is dropped (an RGBA H&E slide opens as RGB).
    level : int
        Pyramid level of a pyramidal TIFF or OME-Zarr (0 = full resolution).
    plane : int or dict, optional
        Index along plane axes such as ``Z`` or ``T`` (``{"Z": 3}`` when there are several).
        Default 0, with a warning naming the axes when they have more than one plane.
    axes : str, optional
        Axes of the source, overriding the file's metadata (letters ``YXCSZT``...).
    series : int
        TIFF series (0 = the main image; SVS thumbnails and labels are other series).
    name : str, optional
        Output stem; default the file stem, or ``"image"`` for arrays.

    Returns
    -------
    ImageSource
        ``.data`` is a lazy dask array ``Y×X×C``; nothing but metadata has been read.

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    ValueError
        Unreadable or truncated file, unknown or ambiguous axes, channel / plane / level out of
        range, an image smaller than 2×2 pixels.
    """
    if isinstance(source, ImageSource):
        return _reopen(source, channel=channel, level=level, plane=plane, name=name)
    if isinstance(source, (str, Path)):
        from dataclasses import replace

        image = _open_path(
            Path(source), channel=channel, level=level, plane=plane, axes=axes, series=series
        )
        return replace(image, name=name) if name else image
    if level != 0:
        raise ValueError(f"level={level} applies to pyramidal files only; arrays have level 0")
    if hasattr(source, "shape") and hasattr(source, "dtype"):
        return _open_array(source, axes=axes, channel=channel, plane=plane, name=name or "image")
    raise ValueError(
        f"cannot open a {type(source).__name__} as an image; pass a file path, a numpy array "
        "or a dask array"
    )


def _reopen(image: ImageSource, **kwargs: Any) -> ImageSource:
    """An already opened image: pick channels again (its data is ``YXC`` already)."""
    from dataclasses import replace

    if kwargs["level"] != 0 or kwargs["plane"] is not None:
        raise ValueError("level= and plane= apply when opening a file; pass its path instead")
    if kwargs["channel"] is None and kwargs["name"] is None:
        return image
    data, rgb = to_yxc(image.data, "YXC", channel=kwargs["channel"], rgb=image.rgb)
    return replace(image, data=data, rgb=rgb, name=kwargs["name"] or image.name)


def _open_path(path: Path, **kwargs: Any) -> ImageSource:
    if not path.exists():
        raise FileNotFoundError(f"no image at {path}")
    is_zarr = path.is_dir() or path.suffix.lower() == ".zarr"
    if is_zarr:
        from .zarr_store import open_zarr

        kwargs.pop("series")
        return open_zarr(path, **kwargs)
    from .tiff import open_tiff

    return open_tiff(path, **kwargs)
