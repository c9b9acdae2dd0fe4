"""``diameter="auto"``: measure the objects' size in an image before segmenting it.

A model sees objects best at the size it was trained on (``object_diameter_px`` in its
metadata, 26.6 px for the bundled model). With ``diameter="auto"`` a first pass segments a
sample of the image, the windows with the most contrast, and measures the area-weighted median
equivalent-circle diameter of the objects wholly inside them (area weighting keeps the
fragments of over-split large nuclei from pulling it down). The pass runs at half resolution,
where a quarter of the pixels show the objects at half their size (nuclei of 26–100 px come to
13–50 px, which the model measures to within a few per cent): half of the image, between 512²
and 4 × 1024² of its pixels, about an eighth of the run's compute (a quarter on images under
512², sampled whole; a fixed cost on a slide). Objects that come out small there (under three
quarters of the trained size) are measured again at full resolution on one 256² window.

When the estimate lies outside :data:`BAND` times the trained diameter, the image is rescaled
so that the objects come to the nearer :data:`TARGET` size (0.8 or 1.2 × the trained one: into
the sizes the model handles best, with the least resampling), as ``diameter=`` rescales to
the trained size; inside the band the image is left as it is and the labels are those of a
run without the estimate. Too few objects in the sample (a blank image) leave the image as it
is too, and so does a model that records no size.

The band is what the bundled model handles without rescaling: its training images' median
nucleus diameters run from 22 to 40 px (0.83–1.5 × 26.6), and on the val images zoomed down
it loses little at 0.5 × (F1 @ 0.5 0.919 as is, 0.937 with ``diameter=``) and much at 0.4 ×
(0.717, 0.943). At the upper end, the cross-validation's held-out acquisition of 35–40 px
nuclei (estimated at about 1.5–1.7 × its fold model's size) lost pixel accuracy when shrunk
(AJI 0.857 → 0.839) for few objects won (F1 0.910 → 0.918), while nuclei of twice the size and
more gain in every measure; so images are shrunk only above 1.8 ×. The model card has the
figures.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .rescale import DIAMETER_KEY

#: ``segment_sample(source, settings)``: the engine's labels (``YX`` numpy) of a small 2-D
#: ``ImageSource``; given by the caller that runs the engine (:mod:`.stack`), so this module
#: measures without importing the engine above it.
SegmentSample = Callable[[Any, Any], np.ndarray]

#: The setting's value that asks for the estimate.
AUTO = "auto"
#: Estimated / trained diameter ratios inside which the image is not rescaled.
BAND = (0.55, 1.8)
#: Outside the band, objects are brought to the nearer of these sizes (× trained): into the
#: sizes the model handles best with the least resampling (compute, and labels drawn back).
TARGET = (0.8, 1.2)
#: First pass: resolution, window edge and sample budget (pixels of the image as given).
COARSE = 0.5
COARSE_WINDOW = 1024
COARSE_PIXELS = (512 * 512, 4 * 1024 * 1024)
#: Second pass, for objects under this fraction of the trained size in the first: one window.
FINE_BELOW = 0.75
FINE_WINDOW = 256
#: Fewer measured objects than this give no estimate.
MIN_OBJECTS = 8
#: Candidate windows looked at to pick the sample (an even subset of a larger grid), and the
#: edge of the patch in each whose contrast ranks it (a small read, so a slide's whole grid
#: can be looked at and sparse tissue is found).
MAX_CANDIDATES = 1024
PROBE = 128
#: Smallest object the sample keeps (pixels at the pass's resolution).
SAMPLE_MIN_SIZE = 16


@dataclass(frozen=True)
class SizeEstimate:
    """What the first pass measured and what the run does with it.

    Attributes
    ----------
    diameter : float or None
        Area-weighted median equivalent-circle diameter (pixels of the image as given) of the
        objects wholly inside the sample; ``None`` when fewer than :data:`MIN_OBJECTS` were.
    objects : int
        Objects measured.
    trained : float
        The model's training object diameter (pixels).
    factor : float
        Resampling factor the run uses: 1 inside :data:`BAND`, else the one that brings the
        objects to the nearer :data:`TARGET` size.
    sample_pixels : int
        Pixels the first pass segmented.
    """

    diameter: float | None
    objects: int
    trained: float
    factor: float
    sample_pixels: int

    def message(self) -> str:
        """One short clause for the run's first progress line (see :func:`describe`)."""
        return describe(self.to_dict(), self.factor)

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimated": None if self.diameter is None else round(self.diameter, 2),
            "objects": self.objects,
            "trained": self.trained,
            "sample_pixels": self.sample_pixels,
        }


def describe(size: dict[str, Any], scale: float) -> str:
    """What the estimate measured and did, from its record (a run's ``provenance["diameter"]``
    and ``provenance["scale"]``): the plan line, the CLI and anyone reading an output."""
    if size.get("estimated") is None:
        return (
            f"object size not estimated ({size['objects']} objects in the sample): not "
            f"rescaled; set the diameter if the objects are far from {size['trained']:.0f} px"
        )
    measured = f"objects ~{size['estimated']:.0f} px across ({size['objects']} measured)"
    if scale == 1.0:
        return f"{measured}: not rescaled (the model's {size['trained']:.0f} px)"
    return f"{measured}: predicted at ×{scale:.2f} (the model's {size['trained']:.0f} px)"


def coarse_budget(height: int, width: int) -> int:
    """Pixels (of the image as given) of the first pass: half the image, within bounds."""
    low, high = COARSE_PIXELS
    return int(min(height * width, max(low, min(high, height * width // 2))))


def candidate_windows(height: int, width: int, edge: int) -> list[tuple[slice, slice]]:
    """Windows of at most ``edge`` on a regular grid over the image (an even subset of a
    slide's grid)."""
    edge_y, edge_x = min(edge, height), min(edge, width)
    boxes = [
        (slice(y, y + edge_y), slice(x, x + edge_x))
        for y in range(0, height - edge_y + 1, edge_y)
        for x in range(0, width - edge_x + 1, edge_x)
    ]
    if len(boxes) > MAX_CANDIDATES:
        picks = np.linspace(0, len(boxes) - 1, MAX_CANDIDATES).round().astype(int)
        boxes = [boxes[i] for i in picks]
    return boxes


def pick_windows(data: Any, edge: int, budget: int) -> list[tuple[slice, slice]]:
    """The sample: the candidate windows of ``data`` (``YXC``) with the most contrast.

    Contrast is the 99th minus the 1st percentile of the summed channels of a
    :data:`PROBE`² patch in each window (:func:`_probe`): windows of background only
    (noise) have little of it, windows with objects much. Windows are taken in order of
    contrast while they fit the budget (the first always).
    """
    height, width = int(data.shape[0]), int(data.shape[1])
    boxes = candidate_windows(height, width, edge)
    if len(boxes) == 1:
        return boxes
    contrast = []
    for ys, xs in boxes:
        low, high = np.percentile(_probe(data, ys, xs), (1, 99))
        contrast.append(float(high - low))
    chosen, used = [], 0
    for k in np.argsort(contrast, kind="stable")[::-1]:
        ys, xs = boxes[k]
        size = (ys.stop - ys.start) * (xs.stop - xs.start)
        if chosen and used + size > budget:
            break
        chosen.append(boxes[k])
        used += size
    return chosen


def _probe(data: Any, ys: slice, xs: slice) -> np.ndarray:
    """A :data:`PROBE`² patch centred on a window's first quarter (summed channels).

    Off the window's centre on purpose: the centre of a window on a slide's tile grid is the
    corner of four storage tiles, the first quarter's centre lies inside one, so each probe
    reads one tile (a quarter of a 1024² window's tiles at 512² storage tiles).
    """
    half = PROBE // 2
    cy = ys.start + (ys.stop - ys.start) // 4
    cx = xs.start + (xs.stop - xs.start) // 4
    patch = data[max(cy - half, ys.start) : min(cy + half, ys.stop),
                 max(cx - half, xs.start) : min(cx + half, xs.stop)]  # fmt: skip
    return np.asarray(patch, dtype=np.float32).sum(axis=-1)


def inner_object_areas(labels: np.ndarray) -> np.ndarray:
    """Pixel areas of the objects of ``labels`` (``YX``) that do not touch its edge."""
    labels = np.asarray(labels)
    areas = np.bincount(labels.ravel())
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    areas[edge] = 0
    areas[0] = 0
    return areas[areas > 0]


def weighted_median_diameter(areas: np.ndarray) -> float:
    """Area-weighted median equivalent-circle diameter of objects of these pixel areas."""
    areas = np.sort(np.asarray(areas, dtype=np.float64))
    half = np.searchsorted(np.cumsum(areas), 0.5 * areas.sum())
    return float(np.sqrt(4.0 * areas[min(half, len(areas) - 1)] / np.pi))


def estimate_factor(diameter: float | None, trained: float) -> float:
    """Resampling factor for an estimated diameter: 1 inside :data:`BAND`."""
    if diameter is None or not diameter > 0:
        return 1.0
    ratio = diameter / trained
    if BAND[0] <= ratio <= BAND[1]:
        return 1.0
    target = TARGET[0] if ratio < BAND[0] else TARGET[1]
    return float(np.clip(target / ratio, 0.1, 10.0))


def _measure(
    original: Any, net: Any, settings: Any, segment: SegmentSample, windows: list, factor: float
) -> tuple[np.ndarray, int]:
    """Areas (pixels of the image as given) of the inner objects of the windows, segmented
    at ``factor`` of the image's resolution; and the pixels predicted."""
    from .rescale import rescale_source

    run = settings.replace(
        model=net, out=None, overwrite=False, scheduler=None, diameter=None, scale=None, tta=1,
        plane=None, axes=None, channel=None, stitch_z=None, measure=False, export=(),
        chunk=None, min_size=SAMPLE_MIN_SIZE,
    )  # fmt: skip
    areas, pixels = [], 0
    for ys, xs in windows:
        # one 2-D window: a plane of a stack is sampled as an image of its own
        window = dataclasses.replace(original, data=original.data[ys, xs], planes=())
        crop = rescale_source(window, factor)
        labels = np.asarray(segment(crop, run))
        areas.append(inner_object_areas(labels) / factor**2)
        pixels += labels.size
    return (np.concatenate(areas) if areas else np.empty(0)), pixels


def estimate_size(
    original: Any, net: Any, settings: Any, segment: SegmentSample
) -> SizeEstimate | None:
    """Segment a sample of ``original`` (an ``ImageSource``) and measure its objects.

    ``settings`` are the run's :class:`.settings.SegmentSettings`; ``segment`` segments each
    window with their device, model, thresholds and tiling, without rescaling, test-time
    augmentation, output or cluster. ``None`` when the model records no object size.
    """
    trained = (getattr(net, "metadata", None) or {}).get(DIAMETER_KEY)
    if not trained:
        return None
    trained = float(trained)
    height, width = int(original.shape[0]), int(original.shape[1])
    budget = coarse_budget(height, width)
    edge = min(COARSE_WINDOW, math.isqrt(budget))  # half a small image, not all of it
    windows = pick_windows(original.data, edge, budget)
    areas, pixels = _measure(original, net, settings, segment, windows, COARSE)
    diameter = weighted_median_diameter(areas) if len(areas) >= MIN_OBJECTS else None
    if diameter is None or diameter < FINE_BELOW * trained:
        window = pick_windows(original.data, FINE_WINDOW, 0)
        fine, more = _measure(original, net, settings, segment, window, 1.0)
        pixels += more
        if len(fine) >= MIN_OBJECTS:
            areas, diameter = fine, weighted_median_diameter(fine)
    from ..memory import release_memory

    release_memory()  # the sample's transient buffers go back before the run itself
    if diameter is None:
        return SizeEstimate(None, len(areas), trained, 1.0, pixels)
    return SizeEstimate(diameter, len(areas), trained, estimate_factor(diameter, trained), pixels)
