"""Zarr arrays (format 2 and 3) and OME-Zarr multiscale images, opened lazily with dask.

OME-Zarr metadata is read from the group attributes: ``multiscales`` (NGFF 0.4 and older) or
``ome.multiscales`` (NGFF 0.5). Axes come from the ``axes`` entry, the zarr 3
``dimension_names`` or xarray's ``_ARRAY_DIMENSIONS``; without any of them the small-axis rule
of :func:`napari_sa2net.io.source.guess_axes` applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .source import (
    Channel,
    ImageSource,
    Plane,
    grow_chunks,
    guess_axes,
    normalize_axes,
    plane_axes,
    stem_of,
    to_yxc,
)
from .zarr_arrays import CheckedZarrArray, damaged, refuse_code_codecs

_UM_PER_UNIT = {"nanometer": 1e-3, "micrometer": 1.0, "millimeter": 1e3, "centimeter": 1e4}


def _token(array_dir: Path, node: Any) -> str:
    """A dask name for the array: its place, layout and when its metadata was last written."""
    from dask.base import tokenize

    stamps = [(array_dir / n).stat().st_mtime_ns for n in (".zarray", "zarr.json")
              if (array_dir / n).is_file()]  # fmt: skip
    return tokenize(str(array_dir.absolute()), node.shape, node.chunks, str(node.dtype), stamps)


def multiscales_of(attrs: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The NGFF ``multiscales`` list of a group's attributes (0.4 or 0.5 layout), or None."""
    if "multiscales" in attrs:
        return list(attrs["multiscales"])
    ome = attrs.get("ome")
    if isinstance(ome, Mapping) and "multiscales" in ome:
        return list(ome["multiscales"])
    return None


def _array_axes(array: Any) -> str | None:
    names = getattr(getattr(array, "metadata", None), "dimension_names", None)  # zarr 3 only
    if not names or None in names:
        names = array.attrs.get("_ARRAY_DIMENSIONS")
    if names and all(isinstance(n, str) and len(n) == 1 for n in names):
        return "".join(names).upper()
    return None


def _ngff_axes(multiscale: Mapping[str, Any], ndim: int) -> str:
    axes = multiscale.get("axes")
    if axes is None:  # NGFF 0.1/0.2: always 5-D TCZYX
        return "TCZYX"[-ndim:]
    names = [a["name"] if isinstance(a, Mapping) else a for a in axes]
    return "".join(str(n)[0] for n in names).upper()


def _ngff_pixel_size(multiscale: Mapping[str, Any], level: int) -> tuple[float, float] | None:
    axes = multiscale.get("axes") or []
    transforms = multiscale["datasets"][level].get("coordinateTransformations") or []
    scale = next((t["scale"] for t in transforms if t.get("type") == "scale"), None)
    if scale is None or len(axes) != len(scale) or not all(isinstance(a, Mapping) for a in axes):
        return None
    names = [a.get("name", "").lower() for a in axes]
    if "y" not in names or "x" not in names:
        return None
    sizes = []
    for axis in ("y", "x"):
        i = names.index(axis)
        factor = _UM_PER_UNIT.get(axes[i].get("unit", ""))
        if factor is None:
            return None
        sizes.append(float(scale[i]) * factor)
    return sizes[0], sizes[1]


def channel_names(attrs: Mapping[str, Any]) -> tuple[str, ...]:
    """Channel labels of an OME-Zarr image (``omero.channels[].label``), else empty."""
    omero = attrs.get("omero") or (attrs.get("ome") or {}).get("omero") or {}
    channels = omero.get("channels") if isinstance(omero, Mapping) else None
    if not isinstance(channels, list):
        return ()
    labels = [c.get("label") if isinstance(c, Mapping) else None for c in channels]
    return tuple(str(n) for n in labels) if all(labels) else ()


def _open_multiscale(group: Any, level: int, path: Path) -> tuple[Any, str, Any]:
    multiscale = multiscales_of(group.attrs)[0]
    datasets = multiscale["datasets"]
    if not 0 <= level < len(datasets):
        raise ValueError(
            f"level {level} is out of range: {path} has levels 0..{len(datasets) - 1}"
        )
    array = group[datasets[level]["path"]]
    return array, _ngff_axes(multiscale, array.ndim), _ngff_pixel_size(multiscale, level)


def _lazy(node: Any, path: Path, axes: str) -> Any:
    """The dask array over a zarr array (after refusing codecs that run code)."""
    import dask.array as da

    array_dir = path / node.path if isinstance(node.path, str) else path
    refuse_code_codecs(array_dir, path)
    return da.from_array(
        CheckedZarrArray(node, path),
        chunks=grow_chunks(node.shape, node.chunks, axes),
        name=f"zarr-{_token(array_dir, node)}",
        meta=np.empty((0,) * node.ndim, node.dtype),
        lock=False,
    )


def _open_node(path: Path, level: int) -> tuple[Any, str, Any]:
    """The zarr array to read (a multiscale level of a group), its axes and pixel size."""
    import zarr

    refuse_code_codecs(path, path)  # before zarr parses it (zarr 3's refusal names no fix)
    try:
        node = zarr.open(str(path), mode="r")
        if isinstance(node, zarr.Group):
            node.attrs.asdict()  # zarr 2 parses a group's .zattrs only when first read
    except Exception as err:  # zarr raises several types for missing or broken metadata
        raise damaged(path, err) from err
    if not isinstance(node, zarr.Group):
        if level != 0:
            raise ValueError(f"level={level} needs an OME-Zarr multiscale; {path} is an array")
        return node, _array_axes(node) or guess_axes(node.shape), None
    if multiscales_of(node.attrs) is None:
        names = sorted(node.array_keys())
        raise ValueError(
            f"{path} is a zarr group without OME-Zarr multiscales metadata; pass the path of "
            f"one of its arrays instead ({', '.join(names) or 'it has none'})"
        )
    try:
        return _open_multiscale(node, level, path)
    except (KeyError, TypeError, IndexError, AttributeError) as err:
        raise damaged(path, f"malformed OME-Zarr multiscales metadata ({err!r})") from err


def open_zarr(
    path: Path,
    *,
    channel: Channel = None,
    level: int = 0,
    plane: Plane = None,
    axes: str | None = None,
) -> ImageSource:
    """Open a zarr array or an OME-Zarr multiscale image lazily (see ``open_image``)."""
    path = Path(path)
    node, file_axes, pixel_size = _open_node(path, level)
    yxc_axes = normalize_axes(axes or file_axes, node.shape)
    data = _lazy(node, path, yxc_axes)
    planes = plane_axes(yxc_axes, node.shape)
    data, rgb = to_yxc(data, yxc_axes, channel=channel, plane=plane, rgb=False)
    names = _names(path)
    return ImageSource(data, file_axes, pixel_size, stem_of(path), path, rgb, planes, names)


def _names(path: Path) -> tuple[str, ...]:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
        return channel_names(node.attrs) if isinstance(node, zarr.Group) else ()
    except Exception:  # names are a courtesy; the pixels opened already
        return ()
