"""Label writers: a compressed label TIFF (small images) and an OME-Zarr label pyramid (any size).

Both are atomic (see :mod:`napari_sa2net.io.atomic`), store labels as uint32 (napari shows
uint32 labels directly and no slide runs out of ids) and keep the provenance dictionary:
JSON in the TIFF ImageDescription, ``napari_sa2net`` in the OME-Zarr root attributes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .label_store import create_label_store
from .ngff import METADATA_KEY, to_json

#: Label TIFFs with more pixels than this are written in tiles of ``TIFF_TILE``.
TIFF_TILE_ABOVE = 1024 * 1024
TIFF_TILE = (256, 256)


def check_labels(labels: Any) -> Any:
    """Return ``labels`` (numpy or dask) after checking it is an integer ``[T×][Z×]Y×X`` array."""
    import dask.array as da

    if not isinstance(labels, da.Array):
        labels = np.asarray(labels)
    if not 2 <= labels.ndim <= 5:
        raise ValueError(
            f"labels must be a (Y, X) array or a stack of them, got shape {labels.shape}"
        )
    if labels.dtype.kind not in "uib":
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}; round or cast them")
    signed = isinstance(labels, np.ndarray) and labels.dtype.kind == "i" and labels.size
    if signed and labels.min() < 0:
        raise ValueError("labels must be >= 0 (0 = background); got negative ids")
    return labels


def tiff_description(provenance: Mapping[str, Any]) -> str:
    """The ImageDescription JSON ``{"napari_sa2net": provenance}``.

    tifffile reads any JSON description containing ``"shape":`` as its own shaped-array
    metadata and fails on it, so a key named ``shape`` is written as the equivalent JSON
    escape ``"\\u0073hape"`` (``json.loads`` gives the same dictionary back).
    """
    return json.dumps({METADATA_KEY: provenance}).replace('"shape":', '"\\u0073hape":')


def _tiles(labels: Any, tile: tuple[int, int]) -> Iterator[np.ndarray]:
    """Tiles in TIFF order (plane by plane), computing one band of tile rows at a time."""
    height, width = labels.shape[-2:]
    for index in np.ndindex(*labels.shape[:-2]):
        plane = labels[index]
        for y in range(0, height, tile[0]):
            band = np.asarray(plane[y : y + tile[0]]).astype(np.uint32, copy=False)
            for x in range(0, width, tile[1]):
                yield np.ascontiguousarray(band[:, x : x + tile[1]])


def write_labels_tiff(
    path: str | Path,
    labels: Any,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    pixel_size: tuple[float, float] | None = None,
    axes: str | None = None,
) -> Path:
    """Write instance labels as a zlib-compressed uint32 TIFF, atomically.

    Parameters
    ----------
    path : path-like
        Output file (``.tif``).
    labels : numpy.ndarray or dask.array.Array
        ``Y×X`` non-negative integer ids, 0 = background, or a stack ``[T×][Z×]Y×X`` (one page
        per plane, in C order). Dask arrays are computed one band of 256 rows at a time.
    metadata : mapping, optional
        Provenance, stored as JSON ``{"napari_sa2net": metadata}`` in the ImageDescription.
    overwrite : bool
        Replace an existing file; without it an existing file is a ``FileExistsError``.
    pixel_size : (float, float), optional
        ``(y, x)`` in µm, written as resolution tags.
    axes : str, optional
        The stack's axes (``"ZYX"``, ``"TZYX"``; default by dimension), kept in the provenance
        as ``"axes"`` so :func:`read_labels` gives the stack back.

    Returns
    -------
    Path
        The written file. Images above 1024² pixels are tiled (256²), smaller ones stripped.
    """
    import dask.array as da
    import tifffile

    labels = check_labels(labels)
    provenance = to_json(metadata)
    if pixel_size is not None:
        provenance.setdefault("pixel_size", [float(p) for p in pixel_size])
    if labels.ndim > 2:
        provenance["axes"] = (axes or "TZYX"[-labels.ndim :]).upper()
        provenance["label_shape"] = [int(n) for n in labels.shape]
    description = tiff_description(provenance)
    tiled = isinstance(labels, da.Array) or labels[(0,) * (labels.ndim - 2)].size > TIFF_TILE_ABOVE
    options: dict[str, Any] = {
        "compression": "zlib",
        "photometric": "minisblack",
        "description": description,
        "metadata": None,
    }
    if pixel_size is not None:
        options["resolution"] = (1e4 / pixel_size[1], 1e4 / pixel_size[0])  # px per cm: X, Y
        options["resolutionunit"] = "CENTIMETER"
    final = Path(path)
    with atomic_path(final, overwrite) as partial:
        if tiled:
            data = _tiles(labels, TIFF_TILE)
            tifffile.imwrite(
                partial,
                data,
                shape=labels.shape,
                dtype=np.uint32,
                tile=TIFF_TILE,
                bigtiff=labels.size * 4 > 2**31,
                **options,
            )
        else:
            tifffile.imwrite(partial, labels.astype(np.uint32, copy=False), **options)
    return final


def write_ome_zarr_labels(
    path: str | Path,
    labels: Any,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    chunks: tuple[int, int] = (1024, 1024),
    pixel_size: tuple[float, float] | None = None,
    axes: str | None = None,
    properties: list[dict[str, Any]] | None = None,
) -> Path:
    """Write instance labels as an OME-Zarr (NGFF 0.4) multiscale label image, atomically.

    Parameters
    ----------
    path : path-like
        Output store, conventionally ``NAME.zarr``.
    labels : numpy.ndarray or dask.array.Array
        ``Y×X`` non-negative integer ids, or a stack ``[T×][Z×]Y×X``. A dask array is written
        chunk by chunk (rechunked to ``chunks``, one plane deep), never materialized whole.
    metadata : mapping, optional
        Provenance, stored under ``"napari_sa2net"`` in the root attributes.
    overwrite : bool
        Replace an existing store.
    chunks : (int, int)
        Chunk shape of every pyramid level.
    pixel_size : (float, float), optional
        ``(y, x)`` in µm for the NGFF scale transforms.
    axes : str, optional
        NGFF axis names (``"zyx"``, ``"tyx"``, ...); default by dimension.
    properties : list of dict, optional
        Per-label ``image-label`` properties (each with its ``"label-value"``).

    Returns
    -------
    Path
        The store; levels ``0, 1, ...`` are 2× strided on Y, X until the largest side is < 1024.
    """
    import dask.array as da

    labels = check_labels(labels)
    meta = to_json(metadata)  # fail on bad metadata before writing anything
    axes = axes.lower() if axes else None
    with create_label_store(path, labels.shape, chunks, np.uint32, overwrite, axes) as store:
        target = store.target
        if isinstance(labels, da.Array):
            source = labels.astype(np.uint32).rechunk(target.chunks)
            da.store(source, target, lock=False)
        else:
            target[...] = labels.astype(np.uint32, copy=False)
        return store.finalize(meta, pixel_size, properties)
