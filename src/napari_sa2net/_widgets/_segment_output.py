"""Where segment results go and how they come back as a Labels layer (lazily when large)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ._layers import lazy_level0, yx_transform


def describe_layer(layer: Any) -> str:
    """One line on a layer's size and storage: ``"2048×2048 uint16, dask (lazy), 4 levels"``."""
    data = lazy_level0(layer)
    shape = "×".join(str(s) for s in data.shape)
    kind = "in memory" if isinstance(layer.data, np.ndarray) else "lazy"
    levels = f", {len(layer.data)} levels" if layer.multiscale else ""
    planes = f" ({np.prod(data.shape[: layer.ndim - 2])} planes)" if layer.ndim > 2 else ""
    return f"{shape} {data.dtype}, {kind}{levels}{planes}"


def output_target(folder: Path | None, name: str, pixels: int) -> Path | None:
    """The OME-Zarr path the job writes to, or ``None`` to keep the labels in memory.

    ``pixels`` counts the labels' pixels (every plane of a stack).
    A chosen folder gets ``<layer>_labels.zarr`` (``_labels-2.zarr``, ... when taken, so no
    earlier result is ever replaced); without a folder, images too large to return in memory
    (:data:`~napari_sa2net.inference.settings.RETURN_MAX_PIXELS`) go to a new temporary folder.
    """
    from ..inference import settings

    if folder is None:
        if pixels <= settings.RETURN_MAX_PIXELS:
            return None
        folder = Path(tempfile.mkdtemp(prefix="sa2net-"))
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output folder {folder} is a file; choose a folder")
    folder.mkdir(parents=True, exist_ok=True)
    return settings.label_path(folder, f"{settings.safe_stem(name)}_labels", "zarr", unique=True)


def result_data(result: Any) -> tuple[Any, dict[str, Any]]:
    """Labels (numpy, dask or a lazy pyramid read from the written store) and provenance."""
    path = getattr(result, "path", None)
    if path is not None and Path(path).exists():
        from .._reader import read_sa2net_labels

        [(data, meta, _)] = read_sa2net_labels(str(path))
        return data, meta.get("metadata", {})
    return result.labels, {"napari_sa2net": dict(getattr(result, "metadata", {}) or {})}


def object_count(result: Any, data: Any) -> int:
    """Objects found: the job's own count, else the largest id of an in-memory result."""
    for name in ("n_objects", "num_objects", "count"):
        value = getattr(result, name, None)
        if value is not None:
            return int(value)
    if isinstance(data, np.ndarray):
        return int(np.unique(data[data > 0]).size)
    return -1


def result_name(image_layer: Any) -> str:
    """Name of the labels layer of ``image_layer`` (the preview adds " (preview)")."""
    return f"{image_layer.name} labels"


def add_result_layer(viewer: Any, result: Any, image_layer: Any) -> tuple[Any, int]:
    """Add the labels of ``result`` over ``image_layer`` (same Y/X scale and translate)."""
    data, metadata = result_data(result)
    layer = viewer.add_labels(
        data,
        name=result_name(image_layer),
        multiscale=isinstance(data, list),
        metadata=metadata,
        **yx_transform(image_layer),
    )
    return layer, object_count(result, data)


def replace_preview(viewer: Any, preview: Any, result: Any, image_layer: Any) -> tuple[Any, int]:
    """Give the preview layer the final labels of ``result``, or add them when it is gone.

    The data is swapped in place, so the user's opacity, visibility, blending and place in the
    layer list survive. napari cannot turn one level into a pyramid (or back): then the preview
    is replaced by a new layer at its place, with those settings copied.
    """
    if preview is None or preview not in viewer.layers:
        return add_result_layer(viewer, result, image_layer)
    data, metadata = result_data(result)
    if isinstance(data, list) != bool(preview.multiscale):
        index = viewer.layers.index(preview)
        kept = {k: getattr(preview, k) for k in ("opacity", "visible", "blending")}
        viewer.layers.remove(preview)
        layer, count = add_result_layer(viewer, result, image_layer)
        viewer.layers.move(viewer.layers.index(layer), index)
        for key, value in kept.items():
            setattr(layer, key, value)
        return layer, count
    preview.data = data
    transform = yx_transform(image_layer)
    preview.scale, preview.translate = transform["scale"], transform["translate"]
    preview.metadata = metadata
    preview.name = result_name(image_layer)
    return preview, object_count(result, data)
