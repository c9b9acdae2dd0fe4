"""Rescaling to the model's object size: images in (bilinear), labels back out (smoothly).

A model sees objects at the size it was trained on. ``diameter`` (the typical object diameter
in the user's image, in pixels) or an explicit ``scale`` resamples the image lazily before the
tiles are cut, and the labels are resampled back to the image's own grid, so outputs always
line up with the input. Labels come back by the largest bilinear weight among the 4 nearest
label pixels, which draws smooth outlines where nearest-neighbour resampling draws staircases.
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


def _taps(length: int, scaled: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of ``length`` output pixels: the input pixel centres below and above it on a
    grid of ``scaled`` (clamped to the grid), and the weight of the upper one."""
    centre = (np.arange(length) + 0.5) * scaled / length - 0.5
    low = np.floor(centre)
    frac = (centre - low).astype(np.float32)
    low = low.astype(np.int64)
    return np.clip(low, 0, scaled - 1), np.clip(low + 1, 0, scaled - 1), frac


def _majority(labels: np.ndarray, rows: tuple, cols: tuple) -> np.ndarray:
    """Each output pixel takes the label with the largest bilinear weight among its 4 taps."""
    (r0, r1, fy), (c0, c1, fx) = rows, cols
    taps = [labels[np.ix_(r, c)] for r in (r0, r1) for c in (c0, c1)]
    weights = [np.outer(wy, wx) for wy in (1 - fy, fy) for wx in (1 - fx, fx)]
    score_of = lambda candidate: sum(w * (t == candidate) for t, w in zip(taps, weights))  # noqa: E731
    best, best_score = taps[0], score_of(taps[0])
    for candidate in taps[1:]:
        score = score_of(candidate)
        better = score > best_score + 1e-6  # ties keep the earlier tap: chunk-independent
        best = np.where(better, candidate, best)
        best_score = np.where(better, score, best_score)
    return best


def restore_labels(labels: Any, shape: tuple[int, int], chunk: int = 1024) -> Any:
    """Labels (``YX``) resampled back to ``shape``: each pixel takes the label that holds the
    most of its bilinear weight among the 4 nearest label pixels.

    An object's outline is the 0.5 contour of its bilinearly interpolated mask, not the
    staircase of nearest-neighbour resampling; an exact integer zoom is inverted exactly.
    ``labels``: a numpy array (numpy back), or any array that slices (zarr, dask): a lazy
    dask array of ``(chunk, chunk)`` chunks back, each chunk computed from the label pixels
    it needs, a pure function of its position, so the result does not depend on the chunks.
    """
    rows = _taps(shape[0], labels.shape[0])
    cols = _taps(shape[1], labels.shape[1])
    if isinstance(labels, np.ndarray):
        return _majority(labels, rows, cols)
    import dask.array as da

    def block(template: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        (ya, yb), (xa, xb) = block_info[0]["array-location"]
        r0, r1, fy = (a[ya:yb] for a in rows)
        c0, c1, fx = (a[xa:xb] for a in cols)
        top, left = int(r0.min()), int(c0.min())
        window = np.asarray(labels[top : int(r1.max()) + 1, left : int(c1.max()) + 1])
        return _majority(window, (r0 - top, r1 - top, fy), (c0 - left, c1 - left, fx))

    template = da.empty(shape, dtype=labels.dtype, chunks=(chunk, chunk))
    return da.map_blocks(block, template, dtype=labels.dtype)
