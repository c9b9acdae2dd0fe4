"""napari reader for the label images this plugin writes (OME-Zarr label pyramids, label TIFFs).

Only files carrying the plugin's provenance (``"napari_sa2net"`` in the zarr root attributes or
in the TIFF ImageDescription JSON) are claimed, so other TIFFs and zarr stores fall through to
napari's own readers. A file is claimed only when it opens: its metadata parses, every level
opens and the first chunk decodes (a damaged or truncated output is left to other readers, not
claimed and then failed). The data stays lazy: every pyramid level is a dask array; a chunk
damaged further in fails when it is shown, with a ``ValueError`` naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

METADATA_KEY = "napari_sa2net"  # the key io.writers stores provenance under

LayerData = tuple[Any, dict[str, Any], str]


def _zarr_attrs(path: Path) -> dict[str, Any]:
    """Root attributes of a zarr v2 (``.zattrs``) or v3 (``zarr.json``) store, without zarr."""
    for name, key in ((".zattrs", None), ("zarr.json", "attributes")):
        file = path / name
        if file.is_file():
            try:
                attrs = json.loads(file.read_text())
            except (OSError, ValueError):
                return {}
            return dict(attrs.get(key, {}) if key else attrs)
    return {}


def _tiff_is_ours(path: Path) -> bool:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            description = tif.pages[0].description or ""
        parsed = json.loads(description) if description.lstrip().startswith("{") else None
    except Exception:  # not a readable TIFF, or its description is no JSON: not ours to open
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get(METADATA_KEY), dict)


def _has_our_metadata(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".zarr" and path.is_dir():
        return isinstance(_zarr_attrs(path).get(METADATA_KEY), dict)
    if suffix in (".tif", ".tiff") and path.is_file():
        return _tiff_is_ours(path)
    return False


def _opens(path: Path) -> bool:
    """Whether every level opens and the first chunk of level 0 decodes (a few KB to MB)."""
    import numpy as np

    try:
        data = _read_one(path)[0]
        first = data[0] if isinstance(data, list) else data
        np.asarray(first[:1, :1])
    except Exception:  # whatever is wrong, napari's own readers may still read it
        return False
    return True


def _is_ours(path: Path) -> bool:
    return _has_our_metadata(path) and _opens(path)


def get_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """Return :func:`read_sa2net_labels` when ``path`` is a label output of this plugin."""
    if isinstance(path, list):
        if not path or not all(_is_ours(Path(p)) for p in path):
            return None
    elif not _is_ours(Path(path)):
        return None
    return read_sa2net_labels


def _levels(path: Path) -> int:
    from .io.zarr_store import multiscales_of

    multiscales = multiscales_of(_zarr_attrs(path)) or [{}]
    return max(1, len(multiscales[0].get("datasets", [])))


def _read_one(path: Path) -> LayerData:
    from .io import read_labels

    labels, metadata = read_labels(path)
    data: Any = labels
    if path.is_dir() and _levels(path) > 1:
        data = [labels] + [read_labels(path, level=i)[0] for i in range(1, _levels(path))]
    pixel_size = metadata.get("pixel_size") or _pixel_size(path)
    meta: dict[str, Any] = {"name": path.stem, "metadata": {METADATA_KEY: metadata}}
    lead = labels.ndim - 2
    if pixel_size is not None:
        meta["scale"] = (1.0,) * lead + tuple(float(s) for s in pixel_size)
    if lead and isinstance(metadata.get("axes"), str) and len(metadata["axes"]) == labels.ndim:
        meta["axis_labels"] = tuple(metadata["axes"].lower())
    features = _features(path, metadata)
    if features is not None:
        meta["features"] = features
    if isinstance(data, list):
        meta["multiscale"] = True
    return data, meta, "labels"


def _pixel_size(path: Path) -> Any:
    import warnings

    from .io import open_image

    with warnings.catch_warnings():  # a stack's first plane is read for its metadata only
        warnings.simplefilter("ignore", UserWarning)
        return open_image(path).pixel_size


def _features(path: Path, metadata: dict[str, Any]) -> Any:
    """The objects table written beside the labels (``NAME_objects.csv``), as layer features."""
    from .io.object_files import read_objects_table

    table = path.with_name(f"{path.name[: -len(path.suffix)]}_objects.csv")
    if not table.is_file():
        return None
    return read_objects_table(table)


def read_sa2net_labels(path: str | list[str]) -> list[LayerData]:
    """Read one or more label outputs lazily as napari Labels layer data.

    Returns
    -------
    list of (data, metadata, "labels")
        ``data`` is a ``Y×X`` dask array, or a list of them (level 0 first) for a pyramid; the
        provenance dictionary is in the layer metadata under ``"napari_sa2net"``.
    """
    paths = path if isinstance(path, list) else [path]
    return [_read_one(Path(p)) for p in paths]
