"""TIFF, BigTIFF, OME-TIFF and SVS (tiled, pyramidal) opened lazily through tifffile's zarr store.

Nothing but metadata is read when a file is opened: the pixels come tile by tile when the dask
array is computed. :class:`TiffArray` holds only the path and reopens the file in each process,
so the dask graph pickles (``dask.distributed``).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from .source import (
    Channel,
    ImageSource,
    Plane,
    grow_chunks,
    normalize_axes,
    plane_axes,
    stem_of,
    to_yxc,
)
from .tiff_arrays import MemmapArray, TiffArray, TiledPageArray, cannot_read, open_tiff_file

#: Micrometres per unit, for OME units and TIFF ResolutionUnit values (per-centimetre etc.).
_UM_PER_UNIT = {"nm": 1e-3, "µm": 1.0, "um": 1.0, "micron": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}
_UM_PER_RESUNIT = {3: 1e4, 4: 1e3, 5: 1.0}  # CENTIMETER, MILLIMETER, MICROMETER


def _check_complete(path: Path, pages: Any) -> None:
    """Raise when a page's image data lies past the end of the file (a truncated copy)."""
    size = path.stat().st_size
    for page in pages:
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts) if n]
        if ends and max(ends) > size:
            raise ValueError(
                f"cannot read {path}: image data ends at byte {max(ends)} but the file has "
                f"{size} bytes; is the file complete?"
            )


def _ome_pixel_size(tif: Any, series: int) -> tuple[float, float] | None:
    root = ET.fromstring(tif.ome_metadata)
    pixels = [el for el in root.iter() if el.tag.endswith("}Pixels") or el.tag == "Pixels"]
    if len(pixels) <= series:
        return None
    attrs = pixels[series].attrib
    if "PhysicalSizeY" not in attrs or "PhysicalSizeX" not in attrs:
        return None
    scale = [_UM_PER_UNIT.get(attrs.get(f"PhysicalSize{a}Unit", "µm"), 1.0) for a in "YX"]
    return float(attrs["PhysicalSizeY"]) * scale[0], float(attrs["PhysicalSizeX"]) * scale[1]


def ome_channel_names(tif: Any, series: int = 0) -> tuple[str, ...]:
    """The ``Name`` of every OME ``Channel`` of a series, or empty when any is missing."""
    try:
        if not (tif.is_ome and tif.ome_metadata):
            return ()
        root = ET.fromstring(tif.ome_metadata)
    except (ValueError, ET.ParseError):
        return ()
    pixels = [el for el in root.iter() if el.tag.endswith("}Pixels") or el.tag == "Pixels"]
    if len(pixels) <= series:
        return ()
    names = [c.attrib.get("Name") for c in pixels[series] if c.tag.endswith("Channel")]
    return tuple(names) if names and all(names) else ()


def _tag_pixel_size(tif: Any, page: Any) -> tuple[float, float] | None:
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    per_pixel = []
    for name in ("YResolution", "XResolution"):
        num, den = tags[name].value
        per_pixel.append(den / num if num else 0.0)  # units per pixel
    unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 1
    um = _UM_PER_RESUNIT.get(unit)
    if um is None and tif.is_imagej:  # ImageJ stores the unit in its own metadata
        um = _UM_PER_UNIT.get(str((tif.imagej_metadata or {}).get("unit", "")).lower())
    if um is None or not all(per_pixel):
        return None
    return per_pixel[0] * um, per_pixel[1] * um


def tiff_pixel_size(tif: Any, series: int = 0) -> tuple[float, float] | None:
    """``(y, x)`` pixel size in µm of a series' base level from OME, SVS or resolution tags."""
    from tifffile import tifffile as _tf

    try:
        if tif.is_ome and tif.ome_metadata:
            return _ome_pixel_size(tif, series)
        page = tif.series[series].keyframe
        if tif.is_svs:
            mpp = _tf.svs_description_metadata(tif.pages[0].description).get("MPP")
            return (float(mpp), float(mpp)) if mpp else None
        return _tag_pixel_size(tif, page)
    except (ValueError, KeyError, TypeError, ET.ParseError):
        return None  # malformed metadata must not stop reading the pixels


def _layout(tif: Any, chosen: Any) -> tuple[Any, ...]:
    """How to read a series level: ``("memmap", offset, shape, dtype)``, ``("tiled",)``, ``()``."""
    if chosen.dataoffset is not None and chosen.keyframe.is_memmappable:
        dtype = tif.byteorder + chosen.dtype.str[1:]
        return ("memmap", int(chosen.dataoffset), tuple(chosen.shape), dtype)
    if TiledPageArray.supports(chosen):
        return ("tiled",)
    return ()


def _reader(path: Path, series: int, level: int, layout: tuple[Any, ...]) -> Any:
    if layout and layout[0] == "memmap":
        return MemmapArray(path, *layout[1:])
    if layout:
        return TiledPageArray(path, series, level)
    return TiffArray(path, series, level)


def _read_metadata(path: Path, series: int, level: int) -> tuple[Any, ...]:
    """Axes, photometric, pixel size, downsampling, memory-map layout and channel names."""
    import tifffile

    try:
        with open_tiff_file(path) as tif:
            if not tif.series:
                raise IndexError("no image found in it")
            if not 0 <= series < len(tif.series):
                raise IndexError(f"series {series} is out of range: 0..{len(tif.series) - 1}")
            levels = tif.series[series].levels
            if not 0 <= level < len(levels):
                raise IndexError(f"level {level} is out of range: levels 0..{len(levels) - 1}")
            chosen = levels[level]
            _check_complete(path, chosen.pages)
            y = chosen.axes.index("Y")
            return (
                chosen.axes,
                int(chosen.keyframe.photometric),
                tiff_pixel_size(tif, series),
                levels[0].shape[y] / chosen.shape[y],
                _layout(tif, chosen),
                ome_channel_names(tif, series),
            )
    except ValueError as err:
        if str(err).startswith("cannot read"):
            raise
        raise cannot_read(path, err) from err
    except (OSError, IndexError, KeyError, TypeError, RuntimeError, tifffile.TiffFileError) as err:
        raise cannot_read(path, err) from err  # TiffFileError: no ValueError in tifffile <= 2025.5


def open_tiff(
    path: Path,
    *,
    channel: Channel = None,
    level: int = 0,
    plane: Plane = None,
    axes: str | None = None,
    series: int = 0,
) -> ImageSource:
    """Open one series of a TIFF file lazily as an :class:`ImageSource` (see ``open_image``)."""
    import dask.array as da
    from dask.base import tokenize

    path = Path(path)
    file_axes, photometric, pixel_size, scale, layout, names = _read_metadata(path, series, level)
    try:
        array = _reader(path, series, level, layout)
    except Exception as err:  # tifffile raises many types for broken files
        raise cannot_read(path, err) from err
    yxc_axes = normalize_axes(axes or file_axes, array.shape)
    stat = os.stat(path)
    data = da.from_array(
        array,
        chunks=grow_chunks(array.shape, array.file_chunks, yxc_axes),
        name=f"tiff-{tokenize(str(path), stat.st_mtime_ns, stat.st_size, series, level)}",
        meta=np.empty((0,) * array.ndim, array.dtype),
        lock=False,
    )
    rgb = photometric in (2, 6)  # RGB, YCbCr
    planes = plane_axes(yxc_axes, array.shape)
    data, rgb = to_yxc(data, yxc_axes, channel=channel, plane=plane, rgb=rgb)
    if pixel_size is not None:
        pixel_size = (pixel_size[0] * scale, pixel_size[1] * scale)
    return ImageSource(data, file_axes, pixel_size, stem_of(path), path, rgb, planes, names)
