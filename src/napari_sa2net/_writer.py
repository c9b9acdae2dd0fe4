"""napari writer: save a Labels layer as an OME-Zarr label pyramid or a label TIFF (atomic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

_ZARR = (".zarr",)
_TIFF = (".tif", ".tiff")


def _provenance(meta: dict[str, Any]) -> dict[str, Any]:
    """The plugin's provenance of a layer if it has one, plus where it was saved from."""
    ours = dict((meta.get("metadata") or {}).get("napari_sa2net") or {})
    ours.setdefault("saved_from", "napari layer " + str(meta.get("name", "")))
    return ours


def _level0(data: Any) -> Any:
    """Level 0 of a multiscale layer; a 2-D array as is (numpy or dask, never copied whole)."""
    if isinstance(data, (list, tuple)):
        data = data[0]
    import dask.array as da

    if not isinstance(data, (np.ndarray, da.Array)):
        data = da.from_array(data, chunks=getattr(data, "chunks", None) or "auto")
    return data


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Labels layer to ``path`` (``.zarr`` → OME-Zarr pyramid, ``.tif`` → TIFF).

    Parameters
    ----------
    path : str
        Destination chosen in File > Save Selected Layers.
    data : array-like or list of array-like
        The layer data: ``Y×X`` integer labels, or a pyramid (level 0 is written).
    meta : dict
        The layer attributes; ``scale`` of the last two axes becomes the pixel size.

    Returns
    -------
    list of str
        The written path. Existing outputs are replaced: napari's save dialog already asked.
    """
    from .io import write_labels_tiff, write_ome_zarr_labels
    from .io.atomic import remove_stale_partials

    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in _ZARR + _TIFF:
        raise ValueError(
            f"cannot save labels as {target.name!r}: use a name ending in .zarr (OME-Zarr "
            "pyramid, any size) or .tif (label TIFF)"
        )
    labels = _level0(data)
    scale = meta.get("scale")
    pixel_size = None
    if scale is not None and any(float(s) != 1.0 for s in scale[-2:]):
        pixel_size = (float(scale[-2]), float(scale[-1]))
    writer = write_ome_zarr_labels if suffix in _ZARR else write_labels_tiff
    remove_stale_partials(target.parent)  # a crashed save's partial store can be large
    written = writer(target, labels, _provenance(meta), overwrite=True, pixel_size=pixel_size)
    return [str(written)]
