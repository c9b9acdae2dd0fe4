"""Read back the label images this package writes (label TIFF, OME-Zarr label pyramid)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .ngff import METADATA_KEY


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
        ``Y×X`` integer ids.
    metadata : dict
        The provenance dictionary written with the labels (``{}`` when there is none).
    """
    from .images import open_image

    path = Path(path)
    image = open_image(path, level=level)
    if image.shape[2] != 1:
        raise ValueError(f"{path} has {image.shape[2]} channels; a label image has one")
    return image.data[:, :, 0], _metadata(path)


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
