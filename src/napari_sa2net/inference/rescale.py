"""Rescaling to the model's object size: images in (linear), labels back out (nearest).

A model sees objects at the size it was trained on. ``diameter`` (the typical object diameter
in the user's image, in pixels) or an explicit ``scale`` resamples the image lazily before the
tiles are cut, and the labels are resampled back to the image's own grid, so outputs always
line up with the input.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

#: Key of the training objects' median diameter (pixels) in a checkpoint's metadata.
DIAMETER_KEY = "object_diameter_px"


def scale_factor(scale: float | None, diameter: float | None, metadata: dict[str, Any]) -> float:
    """Resampling factor for the image (``> 1`` enlarges) from ``scale`` or ``diameter``."""
    if scale is not None and diameter is not None:
        raise ValueError("give either scale= or diameter=, not both")
    if diameter is not None:
        trained = metadata.get(DIAMETER_KEY)
        if not trained:
            raise ValueError(
                "this model does not record the object size it was trained on; pass scale= "
                "(e.g. 0.5 to halve the image) instead of diameter="
            )
        if not diameter > 0:
            raise ValueError(f"diameter={diameter} must be a positive number of pixels")
        scale = float(trained) / float(diameter)
    factor = 1.0 if scale is None else float(scale)
    if not 0.1 <= factor <= 10.0:
        raise ValueError(
            f"scale {factor:.3g} is outside 0.1–10; check diameter= (the typical object "
            "diameter in pixels of this image) or scale="
        )
    return factor


def rescale_source(source: Any, factor: float, chunk: int = 1024) -> Any:
    """``source`` with its lazy ``YXC`` data resampled by ``factor`` (bilinear, pixel centres)."""
    if factor == 1.0:
        return source
    from dask_image.ndinterp import affine_transform

    height, width, channels = source.shape
    out_h, out_w = max(2, round(height * factor)), max(2, round(width * factor))
    step_y, step_x = height / out_h, width / out_w
    data = affine_transform(
        source.data.astype(np.float32),
        np.diag([step_y, step_x, 1.0]),
        offset=[0.5 * step_y - 0.5, 0.5 * step_x - 0.5, 0.0],
        output_shape=(out_h, out_w, channels),
        order=1,
        mode="nearest",
        output_chunks=(chunk, chunk, channels),
    )
    pixel_size = source.pixel_size
    if pixel_size is not None:
        pixel_size = (pixel_size[0] * step_y, pixel_size[1] * step_x)
    return dataclasses.replace(source, data=data, pixel_size=pixel_size)


def nearest_indices(length: int, scaled: int) -> np.ndarray:
    """For each of ``length`` output pixels, the nearest of ``scaled`` input pixel centres."""
    return np.minimum(((np.arange(length) + 0.5) * scaled / length).astype(np.int64), scaled - 1)


def restore_labels(labels: Any, shape: tuple[int, int], chunk: int = 1024) -> Any:
    """Labels (numpy or dask ``YX``) resampled back to ``shape`` by nearest neighbour."""
    rows = nearest_indices(shape[0], labels.shape[0])
    cols = nearest_indices(shape[1], labels.shape[1])
    if isinstance(labels, np.ndarray):
        return labels[np.ix_(rows, cols)]
    return labels[rows, :][:, cols].rechunk((chunk, chunk))
