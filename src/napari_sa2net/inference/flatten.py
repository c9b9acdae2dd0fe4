"""Flattening of uneven illumination before the model (``SegmentSettings.flatten``).

Vignetting, haze or a tilted light path raise the background on one side of the field; the
one normalization of the image then puts the bright side's glass where the other side's
nuclei are, and the model reads it as nucleus (held-out val images with the background
rising to 0.9 of the nuclei's brightness across the field: F1 @ 0.5 0.73, Dice 0.40, against
0.95 / 0.97 as recorded).

The scan (:mod:`.scan`) already keeps, per 16-px cell, the lowest mean of its 4×4-px bins:
where a cell holds a gap between nuclei that is the local background. A grey opening of that
map over a window of about five nuclei (:data:`REACH_DIAMETERS` of the model's trained
diameter each way; a ramp comes through it unchanged, nuclei smaller than the window do not),
smoothed, is the background field. It is interpolated bilinearly onto every pixel and
subtracted from the image as it is read, before the normalization, whose statistics are taken
again from the flattened sample; the background test of the scan sees the flattened cells too.
The field depends on the whole image's cell map only, never on the chunks or the tiles.

``flatten="auto"`` (the default) flattens only an image whose background field spans at least
:data:`UNEVEN_THRESHOLD` of its intensity span, so an evenly lit image is not changed at all.
A field of confluent nuclei wider than the window would be taken for background: there the
nuclei are dimmed (``flatten=False`` keeps the image as it is).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Background field range (as a fraction of the normalization span) from which "auto" flattens.
UNEVEN_THRESHOLD = 0.3
#: Half-width of the opening window in trained object diameters.
REACH_DIAMETERS = 2.4
#: Half-width (pixels) for a model that records no object size.
DEFAULT_REACH = 64.0


def reach_px(metadata: dict[str, Any] | None) -> float:
    """Half-width of the opening window, in pixels of the grid the model sees."""
    from .rescale import DIAMETER_KEY

    diameter = (metadata or {}).get(DIAMETER_KEY)
    return REACH_DIAMETERS * float(diameter) if diameter else DEFAULT_REACH


def background_field(low: np.ndarray, cell: int, reach: float) -> np.ndarray:
    """``rows × cols × C`` float32 background at the cell centres from the cells' lowest bins
    (``NaN`` where a cell holds no pixel)."""
    from scipy import ndimage as ndi

    radius = max(1, round(reach / cell))
    size = 2 * radius + 1
    # The erosion's window is clipped at the image's edge, which the minimum does not mind;
    # the dilation's and the smoothing's would bend a ramp near the edge, so the map they take
    # (the nuclei gone) is continued by odd reflection: a ramp goes on as a ramp.
    pad = radius + math.ceil(1.5 * radius)
    field = np.empty(low.shape, np.float32)
    for c in range(low.shape[-1]):
        plane = low[..., c].astype(np.float32)
        finite = np.isfinite(plane)
        if not finite.any():
            field[..., c] = 0.0
            continue
        plane = np.where(finite, plane, np.max(plane[finite]))  # empty cells never win the min
        eroded = ndi.grey_erosion(plane, size=(size, size), mode="nearest")
        wide = np.pad(eroded, pad, mode="reflect", reflect_type="odd")
        opened = ndi.grey_dilation(wide, size=(size, size), mode="nearest")[pad:-pad, pad:-pad]
        wide = np.pad(opened, pad, mode="reflect", reflect_type="odd")
        field[..., c] = ndi.gaussian_filter(wide, radius / 2, mode="nearest")[pad:-pad, pad:-pad]
    return field


def unevenness(field: np.ndarray, stats: tuple[np.ndarray, np.ndarray]) -> float:
    """Range of the field (1st to 99th percentile) over the normalization span, largest over
    channels."""
    from ..normalization import Normalization

    low, high = np.percentile(field.reshape(-1, field.shape[-1]), (1, 99), axis=0)
    return float(np.max((high - low) / Normalization.span(*stats)))


def _weights(
    start: int, stop: int, cell: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell indices and weights of the linear interpolation for pixels ``start:stop``."""
    position = (np.arange(start, stop, dtype=np.float64) + 0.5) / cell - 0.5
    position = np.clip(position, 0, n - 1)
    first = np.minimum(np.floor(position).astype(np.int64), max(n - 2, 0))
    second = np.minimum(first + 1, n - 1)
    return first, second, (position - first).astype(np.float32)


def field_at(
    field: np.ndarray, cell: int, rows: tuple[int, int], cols: tuple[int, int]
) -> np.ndarray:
    """The background field on the pixels ``rows[0]:rows[1]`` × ``cols[0]:cols[1]``
    (``h × w × C`` float32), bilinear between cell centres."""
    r0, r1, tr = _weights(*rows, cell, field.shape[0])
    c0, c1, tc = _weights(*cols, cell, field.shape[1])
    along = field[r0] * (1 - tr)[:, None, None] + field[r1] * tr[:, None, None]
    return along[:, c0] * (1 - tc)[None, :, None] + along[:, c1] * tc[None, :, None]


def flatten_data(data: Any, field: np.ndarray, cell: int) -> Any:
    """``data`` (``YXC`` numpy or dask) minus the background field, float32, lazily for dask."""
    if not hasattr(data, "map_blocks"):
        h, w = data.shape[:2]
        return np.asarray(data, np.float32) - field_at(field, cell, (0, h), (0, w))

    def block(x: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        (y0, y1), (x0, x1) = block_info[0]["array-location"][:2]
        return x.astype(np.float32) - field_at(field, cell, (y0, y1), (x0, x1))

    return data.map_blocks(block, dtype=np.float32)
