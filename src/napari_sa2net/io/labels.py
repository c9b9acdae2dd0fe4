"""Read back the label images this package writes (label TIFF, OME-Zarr label pyramid)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .ngff import METADATA_KEY

#: Chunk edge (Y, X) of label TIFFs read lazily.
TIFF_READ_CHUNK = 1024


def read_labels(path: str | Path, level: int = 0) -> tuple[Any, dict[str, Any]]:
    """Open a label TIFF or OME-Zarr label store lazily, with its provenance.

    Parameters
    ----------
    path : path-like
        A file from :func:`write_labels_tiff` or a store from :func:`write_ome_zarr_labels`
        (other single-channel label images are read too, with empty metadata).
    level : int
        Pyramid level of an OME-Zarr store.

    Returns
    -------
    labels : dask.array.Array
        ``Y×X`` integer ids, or ``[T×][Z×]Y×X`` for a stack (the provenance's ``"axes"``
        names them), one plane per chunk.
    metadata : dict
        The provenance dictionary written with the labels (``{}`` when there is none).
    """
    path = Path(path)
    metadata = _metadata(path)
    if path.is_dir() or path.suffix.lower() == ".zarr":
        data = _zarr_labels(path, level)
    else:
        data = _tiff_labels(path, level, metadata)
    return data, metadata


def _zarr_labels(path: Path, level: int) -> Any:
    from .source import normalize_axes
    from .zarr_store import _lazy, _open_node

    node, axes, _ = _open_node(path, level)
    data = _lazy(node, path, normalize_axes(axes, node.shape))
    return _squeeze_channel(data, normalize_axes(axes, node.shape), path)


def _tiff_labels(path: Path, level: int, metadata: dict[str, Any]) -> Any:
    import dask.array as da
    import numpy as np

    from .images import open_image

    shape = metadata.get("label_shape")
    if not shape or len(shape) == 2:  # a plain 2-D label TIFF (ours or another program's)
        image = open_image(path, level=level)
        if image.shape[2] != 1:
            raise ValueError(f"{path} has {image.shape[2]} channels; a label image has one")
        return image.data[:, :, 0]
    from .tiff_arrays import TiffArray, cannot_read

    try:
        array = TiffArray(path, 0, level)
    except Exception as err:  # tifffile raises many types for broken files
        raise cannot_read(path, err) from err
    chunks = (1,) * (array.ndim - 2) + tuple(min(n, TIFF_READ_CHUNK) for n in array.shape[-2:])
    data = da.from_array(array, chunks=chunks, meta=np.empty((0,) * array.ndim, array.dtype))
    if int(np.prod(shape)) != data.size:
        raise ValueError(f"{path} holds {data.shape} labels but its metadata says {shape}")
    return data.reshape(tuple(shape))


def _squeeze_channel(data: Any, axes: str, path: Path) -> Any:
    if "C" not in axes:
        return data
    if data.shape[axes.index("C")] != 1:
        raise ValueError(f"{path} has {data.shape[axes.index('C')]} channels; labels have one")
    index = tuple(0 if a == "C" else slice(None) for a in axes)
    return data[index]


def _metadata(path: Path) -> dict[str, Any]:
    if path.is_dir() or path.suffix.lower() == ".zarr":
        import zarr

        return dict(zarr.open(str(path), mode="r").attrs.get(METADATA_KEY, {}))
    import tifffile

    with tifffile.TiffFile(path) as tif:
        description = tif.pages[0].description
    try:
        parsed = json.loads(description)
    except ValueError:
        return {}
    return dict(parsed.get(METADATA_KEY, {})) if isinstance(parsed, dict) else {}
