"""Cross-validation helpers: folds grouped by acquisition, and a crowded-nuclei score.

A validation figure predicts unseen data only when no acquisition (microscope session, cell line,
staining) is on both sides of the split: images of one acquisition resemble each other more than
images of another lab. :func:`group_folds` therefore keeps every acquisition (the file-name prefix
before ``__``) whole inside one fold.

Touching nuclei are the known weakness (the 3-class model merges them), so besides whole-image
metrics :func:`crowded_counts` scores only the objects inside *crowded windows* — square windows
holding several nuclei that touch another (:func:`crowded_mask`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .metrics import match_instances, overlaps
from .targets import contact_pixels

#: Separator between the acquisition and the image index in a file name.
ACQUISITION_SEPARATOR = "__"


def acquisition(name: str) -> str:
    """The acquisition of an image name: the part before ``__`` (the whole name without one)."""
    return name.split(ACQUISITION_SEPARATOR, 1)[0]


def group_folds(names: Sequence[str], k: int) -> list[list[int]]:
    """Split images into ``k`` folds that never share an acquisition.

    Groups are dealt largest first to the fold holding the fewest images so far (ties: the lower
    fold), the rule of scikit-learn's ``GroupKFold``; the result depends only on the names.

    Returns
    -------
    list of list of int
        For each fold the indices (into ``names``) of its held-out images, ascending.
    """
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(acquisition(name), []).append(index)
    if not 2 <= k <= len(groups):
        raise ValueError(
            f"{k} folds need between 2 and {len(groups)} acquisitions (file-name prefixes before "
            f"'__'), found {len(groups)}: choose --folds from 2 to {len(groups)}"
        )
    folds: list[list[int]] = [[] for _ in range(k)]
    for _, members in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        smallest = min(range(k), key=lambda f: (len(folds[f]), f))
        folds[smallest].extend(members)
    return [sorted(fold) for fold in folds]


def touching_objects(labels: np.ndarray, gap: int = 1) -> np.ndarray:
    """Ids of the objects within ``gap`` background pixels of another object, ascending."""
    labels = np.asarray(labels)
    contact = ndi.binary_dilation(contact_pixels(labels, gap), np.ones((3, 3), bool))
    ids = np.unique(labels[contact])
    return ids[ids > 0]


def centroids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, N×2 integer (y, x) centroids)`` of the objects of a label image."""
    labels = np.asarray(labels)
    flat = labels.ravel()
    counts = np.bincount(flat)
    ids = np.nonzero(counts)[0]
    ids = ids[ids > 0]
    ys, xs = np.indices(labels.shape)
    cy = np.bincount(flat, ys.ravel())[ids] / counts[ids]
    cx = np.bincount(flat, xs.ravel())[ids] / counts[ids]
    return ids, np.stack([cy, cx], axis=1).round().astype(int)


def crowded_mask(labels: np.ndarray, window: int = 128, min_touching: int = 3) -> np.ndarray:
    """Non-overlapping ``window²`` grid cells that hold the centroids of at least
    ``min_touching`` touching objects (``YX`` bool; cut cells at the image edge count too)."""
    labels = np.asarray(labels)
    ids, points = centroids(labels)
    touching = np.isin(ids, touching_objects(labels))
    cells = points[touching] // window
    grid = (-(-labels.shape[0] // window), -(-labels.shape[1] // window))
    counts = np.zeros(grid, int)
    np.add.at(counts, (cells[:, 0], cells[:, 1]), 1)
    crowded = np.kron(counts >= min_touching, np.ones((window, window), bool))
    return crowded[: labels.shape[0], : labels.shape[1]]


@dataclass(frozen=True)
class CrowdedCounts:
    """Objects inside a region: true and predicted ones, and how many of each were matched."""

    n_true: int
    n_pred: int
    matched_true: dict[float, int]
    matched_pred: dict[float, int]

    def f1(self, iou_threshold: float) -> float:
        """``(matched true + matched predicted) / (true + predicted)``, 1.0 for an empty region."""
        total = self.n_true + self.n_pred
        hits = self.matched_true[iou_threshold] + self.matched_pred[iou_threshold]
        return hits / total if total else 1.0


def crowded_counts(
    gt: np.ndarray, pred: np.ndarray, region: np.ndarray, thresholds: Sequence[float] = (0.5, 0.75)
) -> CrowdedCounts:
    """Match whole objects over the whole image, then count those centred in ``region``.

    Objects are matched one to one (as :func:`.metrics.match_instances`) on the full images, so
    no window edge cuts an object; a true object counts when its centroid lies in ``region``,
    a predicted one likewise.
    """
    region = np.asarray(region, bool)
    gt_ids, gt_points = centroids(gt)
    pred_ids, pred_points = centroids(pred)
    gt_in = gt_ids[region[gt_points[:, 0], gt_points[:, 1]]] if gt_ids.size else gt_ids
    pred_in = pred_ids[region[pred_points[:, 0], pred_points[:, 1]]] if pred_ids.size else pred_ids
    table = overlaps(gt, pred)
    matched_true, matched_pred = {}, {}
    for threshold in thresholds:
        pairs = np.array(match_instances(gt, pred, threshold, table).pairs, int).reshape(-1, 2)
        matched_true[threshold] = int(np.isin(pairs[:, 0], gt_in).sum())
        matched_pred[threshold] = int(np.isin(pairs[:, 1], pred_in).sum())
    return CrowdedCounts(int(gt_in.size), int(pred_in.size), matched_true, matched_pred)
