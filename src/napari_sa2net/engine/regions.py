"""Rectangular annotation regions ``(y0, x0, y1, x1)`` (end exclusive) for finetuning.

:func:`plan_regions` is the one place that decides which regions train and which are held out,
and refuses annotations with nothing to learn from; the engine and the finetune widget (before
it starts a job) both call it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Region = tuple[int, int, int, int]
#: Context (pixels) around a held-out region that the network sees when it is validated.
CONTEXT = 32


def check_regions(regions: Sequence[Sequence[int]], shape: tuple[int, int]) -> list[Region]:
    """Validate ``(y0, x0, y1, x1)`` boxes against an image of ``shape`` (clipped to it)."""
    out = []
    for region in regions:
        if len(region) != 4:
            raise ValueError(f"a region is (y0, x0, y1, x1), got {tuple(region)}")
        y0, x0, y1, x1 = (int(v) for v in region)
        y0, x0, y1, x1 = max(y0, 0), max(x0, 0), min(y1, shape[0]), min(x1, shape[1])
        if y1 - y0 < 4 or x1 - x0 < 4:
            raise ValueError(
                f"region {tuple(region)} covers less than 4×4 pixels of the {shape[0]}×"
                f"{shape[1]} image: draw a larger rectangle inside the image"
            )
        out.append((y0, x0, y1, x1))
    return out


def regions_from_labels(labels: np.ndarray, margin: int = 16) -> list[Region]:
    """Bounding boxes of the painted objects grown by ``margin`` (one per object)."""
    from scipy import ndimage as ndi

    boxes = ndi.find_objects(np.asarray(labels).astype(np.int64, copy=False))
    h, w = labels.shape
    return [
        (max(s[0].start - margin, 0), max(s[1].start - margin, 0),
         min(s[0].stop + margin, h), min(s[1].stop + margin, w))
        for s in boxes if s is not None
    ]  # fmt: skip


def split_regions(
    regions: list[Region], val_fraction: float, seed: int
) -> tuple[list[Region], list[Region]]:
    """Hold out ``max(1, round(val_fraction · n))`` regions, or the bottom rows of a single one."""
    if val_fraction <= 0:
        return regions, []
    if len(regions) == 1:
        y0, x0, y1, x1 = regions[0]
        cut = y0 + max(4, round((1 - val_fraction) * (y1 - y0)))
        if y1 - cut < 4:
            raise ValueError(
                f"region {regions[0]} is too small to hold out {val_fraction:.0%} for "
                "validation: draw a larger region, add regions, or use val_fraction=0"
            )
        return [(y0, x0, cut, x1)], [(cut, x0, y1, x1)]
    n_val = max(1, round(val_fraction * len(regions)))
    order = np.random.default_rng(seed).permutation(len(regions))
    held = set(order[:n_val].tolist())
    return (
        [r for i, r in enumerate(regions) if i not in held],
        [r for i, r in enumerate(regions) if i in held],
    )


def mask_of(regions: list[Region], shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``YX`` mask of the union of ``regions``."""
    mask = np.zeros(shape, bool)
    for y0, x0, y1, x1 in regions:
        mask[y0:y1, x0:x1] = True
    return mask


def with_context(region: Region, shape: tuple[int, int]) -> tuple[Region, Region]:
    """The region grown by :data:`CONTEXT` and the region's position inside the grown one."""
    y0, x0, y1, x1 = region
    gy0, gx0 = max(y0 - CONTEXT, 0), max(x0 - CONTEXT, 0)
    gy1, gx1 = min(y1 + CONTEXT, shape[0]), min(x1 + CONTEXT, shape[1])
    return (gy0, gx0, gy1, gx1), (y0 - gy0, x0 - gx0, y1 - gy0, x1 - gx0)


def _painted(labels: np.ndarray, region: Region, exclude: Sequence[Region] = ()) -> bool:
    """Whether ``labels`` has an object pixel inside ``region`` but outside ``exclude``."""
    y0, x0, y1, x1 = region
    painted = np.asarray(labels[y0:y1, x0:x1]) != 0
    for a, b, c, d in exclude:
        painted[max(a - y0, 0) : max(c - y0, 0), max(b - x0, 0) : max(d - x0, 0)] = False
    return bool(painted.any())


def plan_regions(
    labels: np.ndarray,
    regions: Sequence[Sequence[int]] | None,
    val_fraction: float,
    seed: int = 0,
    margin: int = 16,
) -> tuple[list[Region], list[Region]]:
    """Training and held-out regions of a finetuning run on ``labels`` (``YX``, 0 = unpainted).

    Without ``regions`` the painted objects' boxes grown by ``margin`` are used. The regions are
    split by :func:`split_regions`.

    Raises
    ------
    ValueError
        Nothing is painted (inside the regions, when given), or every painted pixel lies in
        the held-out part, so training would only ever see background.
    """
    if regions:
        regions = check_regions(regions, labels.shape[:2])
        if not any(_painted(labels, r) for r in regions):
            raise ValueError(
                f"nothing is painted inside the {len(regions)} region(s): paint every nucleus "
                "inside each rectangle into the labels (one id per nucleus), or draw the "
                "rectangles where you painted"
            )
    else:
        regions = regions_from_labels(labels, margin)
        if not regions:
            raise ValueError(
                "nothing is painted: paint some nuclei into the labels (one id per nucleus) "
                "or draw regions first"
            )
    train, val = split_regions(regions, val_fraction, seed)
    if not any(_painted(labels, r, val) for r in train):
        raise ValueError(
            "every painted nucleus lies in the part held out for validation, so training "
            "would see only background: paint nuclei in more regions, or lower the validation "
            "fraction (val_fraction; Validation in the widget)"
        )
    return train, val
