"""Probability maps to instance labels: interior seeds grown into the foreground.

Instance mode (3 maps: background, interior, boundary): a pixel is foreground where
``1 - p_background > foreground_threshold``; foreground pixels with ``p_interior >
interior_threshold`` are seeds; 8-connected seeds smaller than ``min_size // 4`` are noise inside
an object and dropped; the others are grown into their foreground component by a watershed on the
background probability (quantized to 1/65535, as the out-of-core maps store it); foreground that
no seed reaches is an object of its own; objects under ``min_size`` pixels are removed, those
touching the image's edge (nuclei cut by it) only under ``min_size // 4``. With a 4th map, the
centre map of a model trained with one (:class:`~napari_sa2net.model.SA2Net`), seeds are the
foreground pixels whose centre value exceeds ``interior_threshold`` and the watershed runs on the
mean of the background probability and ``1 - centre``. Binary
mode: the foreground's 8-connected components. Ids are ``1..N`` in raster order of the objects'
components (a split component's objects in the raster order of their seeds).

One implementation serves a whole array here and a slide out of core (:mod:`.maps`,
:mod:`.instances`): the whole array is simply one chunk, so both give the same labels.
"""

from __future__ import annotations

import numpy as np

#: Objects (and, divided by 4, seeds) smaller than this many pixels are dropped by default.
DEFAULT_MIN_SIZE = 16
#: ``min_size=None`` (auto): this fraction of the area of the image's typical object (111 px
#: for nuclei of the bundled model's 26.6 px).
AUTO_MIN_SIZE_FRACTION = 0.2


def auto_min_size(
    metadata: dict | None, min_size: int | None = None, diameter: float | None = None
) -> int:
    """Smallest object (pixels): ``min_size`` when given, else a fifth of the area of a
    typical object (the one rule the engine and ``sa2net evaluate`` share).

    The typical object is ``diameter`` (pixels on the grid the model sees) when the run
    measured the image's objects (``diameter="auto"``: the area-weighted median of a sample),
    else the model's training objects' (``object_diameter_px``), which is the size that
    ``diameter=`` brings the objects to. A model without a recorded diameter and no measurement
    gets :data:`DEFAULT_MIN_SIZE`.

    What a model marks outside annotated nuclei (debris, micronuclei, fragments of a nucleus'
    edge) is small: on the held-out images of the bundled model's cross-validation (2,618 true
    nuclei) 43 of the 48 unmatched objects outside any nucleus were under 250 px, in images
    whose median nucleus is 390-1,270 px, while only 8 true nuclei away from the image's edge
    are under a fifth of their image's typical area. Scored on those images (the fold models'
    labels filtered again): a tenth of the model's area F1 @ 0.5 0.939, a fifth of it 0.947, a
    fifth of the image's own typical object 0.951 (0.15: 0.948, 0.25: 0.950); the misc
    acquisition, whose nuclei are 1.45 x the trained size, gained most (0.910 -> 0.936).
    """
    import math

    from .rescale import DIAMETER_KEY

    if min_size is not None:
        return int(min_size)
    if not diameter:
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
    if mode == "instance" and k not in (3, 4):
        raise ValueError(
            f"instance mode needs 3 maps (background, interior, boundary) or 4 (and a centre "
            f"map), got {k}: use mode='binary' for a 1-class model"
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
        Instance mode: K = 3 (background, interior, boundary) or 4 (and the centre map).
        Binary mode: K = 1 (foreground) or 2 (background, foreground).
    mode : {"instance", "binary"}
        How to read ``probs``.
    interior_threshold : float
        Interior probability (or centre value, with 4 maps) above which a pixel seeds an
        object (instance mode).
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
        Thresholds(
            mode,
            interior_threshold,
            foreground_threshold,
            int(min_size),
            seeds="centre" if mode == "instance" and probs.shape[0] == 4 else "interior",
        ),
    )
    for ij in chunking.indices():
        y0, y1, x0, x1 = bounds = chunking.bounds(*ij)
        sink.put(bounds, probs[:, y0:y1, x0:x1])
    target = ArrayRef(np.zeros(shape, np.uint32))
    instances(chunking, sink, target, lambda _, tasks: dask.compute(*tasks, scheduler="sync"))
    return target.open()
