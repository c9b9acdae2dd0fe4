"""napari writers: a Labels layer as QuPath GeoJSON detections or an ImageJ ROI set.

*File > Save Selected Layers* with a ``.geojson`` or ``.zip`` name. The outlines are traced
chunk by chunk from the layer's data (lazy data stays lazy), each object whole, as
``sa2net segment --export`` writes them; the file is written atomically.
"""

from __future__ import annotations

from typing import Any

from ._writer import _level0


def _export(kind: str, path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    from .inference.exporting import export_labels

    labels = _level0(data)
    provenance = (meta.get("metadata") or {}).get("napari_sa2net") or {}
    axes = str(provenance.get("axes") or "TZYX"[-labels.ndim :])
    if len(axes) != labels.ndim:
        axes = "TZYX"[-labels.ndim :]
    scale = meta.get("scale")
    pixel_size = None
    if scale is not None and any(float(s) != 1.0 for s in scale[-2:]):
        pixel_size = (float(scale[-2]), float(scale[-1]))
    export_labels(labels, axes, {kind: path}, pixel_size)
    return [path]


def write_geojson(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as a GeoJSON FeatureCollection of QuPath detections."""
    return _export("geojson", path, data, meta)


def write_imagej_rois(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as an ImageJ / Fiji ROI Manager zip (one ROI per object)."""
    return _export("imagej", path, data, meta)
