"""Training targets from instance labels: classes, the centre map, contacts, label hygiene.

Every function takes a ``YX`` integer label image (0 = background) and is pure numpy / scipy.
:func:`make_target` builds what :class:`~napari_sa2net.engine.data.CropSampler` samples and
the losses (:mod:`.losses`) read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

#: Target value of pixels the loss ignores (padding, outside finetuning regions).
IGNORE = 255
BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2
#: A centre map value ``v`` in [0, 1] is stored in a uint8 target as ``round(v * CENTRE_SCALE)``.
CENTRE_SCALE = 250


def labels_to_classes(labels: np.ndarray, boundary_width: int = 1) -> np.ndarray:
    """3-class training target of an instance label image.

    Parameters
    ----------
    labels : np.ndarray
        ``YX`` integer instance ids, 0 = background.
    boundary_width : int
        Width in pixels of the boundary ring.

    Returns
    -------
    np.ndarray
        ``YX`` uint8: 0 background, 1 interior, 2 boundary — object pixels within
        ``boundary_width`` (8-neighbourhood) of another object or of the background. The image
        edge is not a boundary. ``inference.postprocess.probabilities_to_instances`` inverts this.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a YX image, got shape {labels.shape}")
    if boundary_width < 1:
        raise ValueError(f"boundary_width must be >= 1, got {boundary_width}")
    size = 2 * boundary_width + 1
    high = ndi.maximum_filter(labels, size=size, mode="nearest")
    low = ndi.minimum_filter(labels, size=size, mode="nearest")
    target = np.zeros(labels.shape, np.uint8)
    inside = labels > 0
    target[inside] = INTERIOR
    target[inside & ((high != labels) | (low != labels))] = BOUNDARY
    return target


def centre_map(labels: np.ndarray) -> np.ndarray:
    """Centre map of an instance label image (``YX`` float32 in [0, 1]).

    Inside each object, the Euclidean distance of a pixel to the nearest pixel outside the
    object (background or another object), divided by the largest such distance in the object:
    1 at the object's centre, about ``1 / radius`` on its outline, 0 outside. Touching objects
    each keep their own peak, with a valley down to their shared edge between them.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a YX image, got shape {labels.shape}")
    out = np.zeros(labels.shape, np.float32)
    ids = labels.astype(np.int64, copy=False)
    for index, box in enumerate(ndi.find_objects(ids), start=1):
        if box is None:
            continue
        mask = ids[box] == index
        # one pixel of padding: an object cut by the image's edge peaks inside the image
        distance = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        out[box][mask] = (distance / distance.max())[mask]
    return out


def contact_pixels(labels: np.ndarray, gap: int = 1) -> np.ndarray:
    """Pixels whose ``(2·gap+1)²`` window holds two different objects (``YX`` bool).

    With ``gap=1`` these are the pixels where objects touch or are at most one background pixel
    apart: where a 3-class model has to draw a boundary between two nuclei.
    """
    labels = np.asarray(labels)
    size = 2 * gap + 1
    high = ndi.maximum_filter(labels, size=size, mode="nearest")
    # background reads as one id above every object (not the dtype's maximum: scipy's minimum
    # filter wraps int64's maximum round to its minimum)
    top = int(labels.max(initial=0)) + 1
    low = ndi.minimum_filter(
        np.where(labels > 0, labels.astype(np.int64), top), size=size, mode="nearest"
    )
    return (high > 0) & (low < top) & (high != low)


def split_disconnected(labels: np.ndarray, min_part: int = 16) -> tuple[np.ndarray, int]:
    """Give every separate piece of an instance id an id of its own.

    Hand-painted labels reuse ids by accident (napari's brush keeps its id until it is changed;
    one image of mnfinder's training set marks 19 pairs of far-apart nuclei with one id each).
    A scorer then sees one object where there are two, and a model that finds both looks wrong.
    Each 8-connected piece of an id becomes an object of its own; a piece that is not its id's
    largest and has fewer than ``min_part`` pixels (a slip of the brush) becomes background.

    Returns
    -------
    labels : np.ndarray
        The input itself when every id is one piece, else ``YX`` uint32 ids ``1..N``.
    split : int
        How many ids held more than one piece.
    """
    from skimage.measure import label as label_pieces

    labels = np.asarray(labels)
    ids = np.unique(labels)
    n_ids = int(np.count_nonzero(ids))
    pieces, n_pieces = label_pieces(labels, background=0, connectivity=2, return_num=True)
    if n_pieces == n_ids:
        return labels, 0
    owner = np.zeros(n_pieces + 1, labels.dtype)
    owner[pieces.ravel()] = labels.ravel()  # each piece lies inside one id
    sizes = np.bincount(pieces.ravel(), minlength=n_pieces + 1)
    order = np.lexsort((-sizes[1:], owner[1:])) + 1  # pieces by id, largest first
    first = np.ones(order.size, bool)
    first[1:] = owner[order[1:]] != owner[order[:-1]]
    keep = np.zeros(n_pieces + 1, bool)
    keep[order] = first | (sizes[order] >= min_part)
    keep[0] = False
    renumber = np.zeros(n_pieces + 1, np.uint32)
    renumber[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    _, pieces_per_id = np.unique(owner[1:], return_counts=True)  # ids may be huge: no bincount
    split = int(np.count_nonzero(pieces_per_id > 1))
    return renumber[pieces], split


def median_object_diameter(label_images: Sequence[np.ndarray]) -> float:
    """Median equivalent-circle diameter (pixels) of the objects of instance label images."""
    diameters = []
    for labels in label_images:
        areas = np.bincount(np.asarray(labels).ravel())[1:]
        diameters.append(np.sqrt(4.0 * areas[areas > 0] / np.pi))
    values = np.concatenate(diameters) if diameters else np.empty(0)
    if values.size == 0:
        raise ValueError("the training labels hold no objects; paint at least one object")
    return round(float(np.median(values)), 2)


def make_target(
    labels: np.ndarray, mode: str, boundary_width: int = 1, centre: bool = False
) -> np.ndarray:
    """Target of one label image: binary foreground (``mode="binary"``) or 3 classes.

    With ``centre`` (instance mode) the target is ``YX×2`` uint8: the classes, then the
    :func:`centre_map` as ``round(value * CENTRE_SCALE)``.
    """
    if mode == "binary":
        return (np.asarray(labels) > 0).astype(np.uint8)
    if mode != "instance":
        raise ValueError(f"mode must be 'binary' or 'instance', got {mode!r}")
    classes = labels_to_classes(labels, boundary_width)
    if not centre:
        return classes
    code = np.rint(centre_map(labels) * CENTRE_SCALE).astype(np.uint8)
    return np.stack([classes, code], axis=-1)
