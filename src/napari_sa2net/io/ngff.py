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


#: NGFF axis types of the plane letters (other letters get no type).
AXIS_TYPES = {"t": "time", "z": "space", "c": "channel", "y": "space", "x": "space"}


def ngff_attrs(
    name: str,
    shapes: list[tuple[int, ...]],
    pixel_size: tuple[float, float] | None,
    axes: str = "yx",
    properties: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """OME-NGFF 0.4 ``multiscales`` + ``image-label`` attributes of a label pyramid.

    Parameters
    ----------
    name : str
        Name of the multiscale image.
    shapes : list of tuple of int
        Shape of every level, leading (plane) axes first, then ``Y, X``; only Y and X shrink.
    pixel_size : (float, float), optional
        ``(y, x)`` micrometres of level 0.
    axes : str
        Lower-case axis names, one per dimension (``"yx"``, ``"zyx"``, ``"tzyx"``).
    properties : list of dict, optional
        ``image-label`` properties, one dict per label with its ``"label-value"``.
    """
    lead = len(axes) - 2
    described = [{"name": a, "type": AXIS_TYPES[a]} if a in AXIS_TYPES else {"name": a}
                 for a in axes]  # fmt: skip
    base = (1.0, 1.0)
    if pixel_size is not None:
        for axis in described[lead:]:
            axis["unit"] = "micrometer"
        base = (float(pixel_size[0]), float(pixel_size[1]))
    datasets = []
    for i, shape in enumerate(shapes):
        factor = (shapes[0][-2] / shape[-2], shapes[0][-1] / shape[-1])
        scale = [1.0] * lead + [base[0] * factor[0], base[1] * factor[1]]
        datasets.append(
            {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    multiscale = {
        "version": "0.4",
        "name": name,
        "axes": described,
        "datasets": datasets,
        "type": "nearest",
        "metadata": {"method": "stride [::2, ::2] on y, x"},
    }
    label: dict[str, Any] = {"version": "0.4"}
    if properties:
        label["properties"] = properties
    return {"multiscales": [multiscale], "image-label": label}
