"""Probability maps to instance labels: interior seeds grown into the foreground.

Instance mode (3 maps: background, interior, boundary): a pixel is foreground where
``1 - p_background > foreground_threshold``; foreground pixels with ``p_interior >
interior_threshold`` are seeds; 8-connected seeds smaller than ``min_size // 4`` are noise inside
an object and dropped; the others are grown into their foreground component by a watershed on the
background probability (quantized to 1/65535, as the out-of-core maps store it); foreground that
no seed reaches is an object of its own; objects under ``min_size`` pixels are removed, those
touching the image's edge (nuclei cut by it) only under ``min_size // 4``. Binary
mode: the foreground's 8-connected components. Ids are ``1..N`` in raster order of the objects'
components (a split component's objects in the raster order of their seeds).

One implementation serves a whole array here and a slide out of core (:mod:`.maps`,
:mod:`.instances`): the whole array is simply one chunk, so both give the same labels.
"""

from __future__ import annotations

import numpy as np

#: Objects (and, divided by 4, seeds) smaller than this many pixels are dropped by default.
DEFAULT_MIN_SIZE = 16
#: ``min_size="auto"`` of a model that records its objects' diameter: this fraction of the area
#: of such an object (55 px for the bundled model's 26.6 px nuclei).
AUTO_MIN_SIZE_FRACTION = 0.1


def auto_min_size(metadata: dict | None, min_size: int | None = None) -> int:
    """Smallest object (pixels): ``min_size`` when given, else a tenth of the model's typical
    object's area (the one rule the engine and ``sa2net evaluate`` share).

    The specks a model marks outside annotated nuclei (debris, noise, fragments of a nucleus'
    edge) are small: on held-out images of the bundled model's cross-validation they were 24 px
    (median; 90 % under 67 px) against nuclei of about 560 px, so dropping objects under a tenth
    of the trained area removes most of them and no nucleus of the size range the model is for
    (a 12-px nucleus has 113 px). Labels are made on the grid the
    model sees, where ``diameter=`` has brought the nuclei to the trained size. A model without a
    recorded diameter gets :data:`DEFAULT_MIN_SIZE`.
    """
    import math

    from .rescale import DIAMETER_KEY

    if min_size is not None:
        return int(min_size)
    diameter = (metadata or {}).get(DIAMETER_KEY)
    if not diameter:
        return DEFAULT_MIN_SIZE
    area = math.pi / 4 * float(diameter) ** 2
    return max(DEFAULT_MIN_SIZE, round(AUTO_MIN_SIZE_FRACTION * area))


def _check_probs(probs: np.ndarray, mode: str) -> np.ndarray:
    probs = np.asarray(probs)
    if mode not in ("instance", "binary"):
        raise ValueError(f"mode must be 'instance' or 'binary', got {mode!r}")
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
    return probs


def probabilities_to_instances(
    probs: np.ndarray,
    mode: str = "instance",
    *,
    interior_threshold: float = 0.5,
    foreground_threshold: float = 0.5,
    min_size: int = DEFAULT_MIN_SIZE,
    chunk: int | None = None,
) -> np.ndarray:
    """Turn a ``K×H×W`` probability map (softmax / sigmoid applied) into instance labels.

    Parameters
    ----------
    probs : np.ndarray
        Instance mode: K = 3 (background, interior, boundary). Binary mode: K = 1
        (foreground) or 2 (background, foreground).
    mode : {"instance", "binary"}
        How to read ``probs``.
    interior_threshold : float
        Interior probability above which a pixel seeds an object (instance mode).
    foreground_threshold : float
        Foreground probability (``1 - background``) above which a pixel belongs to an object.
    min_size : int
        Objects with fewer pixels are removed (and seeds with fewer than a quarter of it);
        objects touching the image's edge are kept down to a quarter of it.
    chunk : int, optional
        Work in chunks of this edge (the labels are the same; memory is lower). Default: one.

    Returns
    -------
    np.ndarray
        ``H×W`` uint32 labels, 0 = background, ids 1..N.
    """
    import dask

    from .instances import instances
    from .maps import MapSink, Thresholds
    from .merger import Chunking
    from .scratch import ArrayRef, Scratch

    probs = _check_probs(probs, mode)
    shape = probs.shape[1:]
    chunking = Chunking.regular(shape, chunk or max(shape))
    sink = MapSink(
        Scratch(shape, chunking.chunk, None),
        Thresholds(mode, interior_threshold, foreground_threshold, int(min_size)),
    )
    for ij in chunking.indices():
        y0, y1, x0, x1 = bounds = chunking.bounds(*ij)
        sink.put(bounds, probs[:, y0:y1, x0:x1])
    target = ArrayRef(np.zeros(shape, np.uint32))
    instances(chunking, sink, target, lambda _, tasks: dask.compute(*tasks, scheduler="sync"))
    return target.open()
