"""Probability maps to instance labels.

Instance mode reads a 3-class map (background / interior / boundary, see
:func:`napari_sa2net.engine.data.labels_to_classes` for how the targets are made): connected
components of the confident interior are the seeds, and a watershed on the background probability
grows each seed through the foreground (interior + boundary), so a boundary pixel joins the seed it
is geodesically nearest to. Foreground blobs that hold no seed (objects so small that all of them
is boundary) become objects of their own. Binary mode labels connected components of the
foreground.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Objects (and seeds) smaller than this many pixels are dropped by default.
DEFAULT_MIN_SIZE = 16

_EIGHT = np.ones((3, 3), bool)


def _check_probs(probs: np.ndarray, mode: str) -> np.ndarray:
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"expected a K×H×W probability map, got shape {probs.shape}")
    k = probs.shape[0]
    if mode == "instance" and k != 3:
        raise ValueError(
            f"instance mode needs 3 maps (background, interior, boundary), got {k}: use "
            "mode='binary' for a 1-class model"
        )
    if mode == "binary" and k not in (1, 2):
        raise ValueError(f"binary mode needs 1 (or 2) maps, got {k}: use mode='instance'")
    if mode not in ("instance", "binary"):
        raise ValueError(f"mode must be 'instance' or 'binary', got {mode!r}")
    return probs


def _remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    if min_size <= 1 or labels.max(initial=0) == 0:
        return labels
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    if small.any():
        labels = np.where(small[labels], 0, labels)
    return labels


def _relabel_sequential(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    ids = ids[ids != 0]
    lut = np.zeros(int(labels.max(initial=0)) + 1, np.uint32)
    lut[ids] = np.arange(1, ids.size + 1, dtype=np.uint32)
    return lut[labels]


def probabilities_to_instances(
    probs: np.ndarray,
    mode: str = "instance",
    *,
    interior_threshold: float = 0.5,
    foreground_threshold: float = 0.5,
    min_size: int = DEFAULT_MIN_SIZE,
) -> np.ndarray:
    """Turn a probability map into instance labels.

    Parameters
    ----------
    probs : np.ndarray
        ``K×H×W`` probabilities (softmax / sigmoid already applied). Instance mode: K = 3
        (background, interior, boundary). Binary mode: K = 1 (foreground) or 2 (background,
        foreground).
    mode : {"instance", "binary"}
        How to read ``probs``.
    interior_threshold : float
        Interior probability above which a pixel seeds an object (instance mode).
    foreground_threshold : float
        Foreground probability (``1 - background``) above which a pixel belongs to an object.
    min_size : int
        Objects with fewer pixels are removed (also seeds, so noise does not split objects).

    Returns
    -------
    np.ndarray
        ``H×W`` uint32 labels, 0 = background, ids 1..N.
    """
    probs = _check_probs(probs, mode)
    if mode == "binary":
        foreground = probs[-1] > foreground_threshold
        labels, _ = ndi.label(foreground, structure=_EIGHT)
        return _relabel_sequential(_remove_small(labels, min_size))
    return _grow_seeds(probs, interior_threshold, foreground_threshold, min_size)


def grow_seeds(
    seeds: np.ndarray, background: np.ndarray, foreground_threshold: float
) -> np.ndarray:
    """Grow labelled ``YX`` seeds into the foreground by a watershed on the background probability.

    Shared by the in-memory path and the chunked pipeline, so both give the same objects.
    Pixels of the foreground no seed reaches stay 0.
    """
    from skimage.segmentation import watershed

    foreground = (1.0 - background) > foreground_threshold
    grown = watershed(background, markers=seeds.astype(np.int64), mask=foreground, connectivity=2)
    return grown.astype(np.uint32)


def _grow_seeds(
    probs: np.ndarray, interior_threshold: float, foreground_threshold: float, min_size: int
) -> np.ndarray:
    background = probs[0].astype(np.float32, copy=False)
    foreground = (1.0 - background) > foreground_threshold
    interior = (probs[1] > interior_threshold) & foreground
    seeds, _ = ndi.label(interior, structure=_EIGHT)
    # Small seeds are noise inside an object; dropping them keeps the object whole.
    seeds = _remove_small(seeds, max(1, min_size // 4))
    labels = grow_seeds(seeds, background, foreground_threshold).astype(seeds.dtype)
    orphans, n_orphans = ndi.label(foreground & (labels == 0), structure=_EIGHT)
    if n_orphans:
        offset = int(labels.max(initial=0))
        labels = np.where(orphans > 0, orphans + offset, labels)
    return _relabel_sequential(_remove_small(labels, min_size))
