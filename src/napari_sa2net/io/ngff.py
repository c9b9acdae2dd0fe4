"""NGFF 0.4 attributes for label pyramids and the JSON-safe provenance dictionary."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: Key of the provenance dictionary in the root attributes (and in TIFF descriptions).
METADATA_KEY = "napari_sa2net"


def to_json(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON-safe copy of ``metadata`` (numpy scalars and arrays, paths and tuples converted)."""

    def convert(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, Path):
            return str(value)
        raise TypeError(f"metadata value {value!r} of type {type(value).__name__} is not JSON")

    try:
        return json.loads(json.dumps(dict(metadata or {}), default=convert))
    except TypeError as err:
        raise ValueError(f"{err}; pass numbers, strings, lists or dicts") from err


def ngff_attrs(
    name: str, shapes: list[tuple[int, int]], pixel_size: tuple[float, float] | None
) -> dict[str, Any]:
    """OME-NGFF 0.4 ``multiscales`` + ``image-label`` attributes for a Y×X label pyramid."""
    axes = [{"name": a, "type": "space"} for a in "yx"]
    base = (1.0, 1.0)
    if pixel_size is not None:
        axes = [{**a, "unit": "micrometer"} for a in axes]
        base = (float(pixel_size[0]), float(pixel_size[1]))
    datasets = []
    for i, shape in enumerate(shapes):
        factor = [shapes[0][0] / shape[0], shapes[0][1] / shape[1]] if i else [1.0, 1.0]
        scale = [base[0] * factor[0], base[1] * factor[1]]
        datasets.append(
            {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    multiscale = {
        "version": "0.4",
        "name": name,
        "axes": axes,
        "datasets": datasets,
        "type": "nearest",
        "metadata": {"method": "stride [::2, ::2]"},
    }
    return {"multiscales": [multiscale], "image-label": {"version": "0.4"}}
