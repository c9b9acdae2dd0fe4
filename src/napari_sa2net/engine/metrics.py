"""Segmentation metrics as pure functions of label images (numpy only).

Pixel metrics compare the foregrounds (label > 0). Instance metrics build one contingency table
of overlaps between ground-truth and predicted ids with ``np.bincount`` (one pass over the pixels),
so a 1024² image with hundreds of objects takes milliseconds.

Conventions: when both images are empty every score is 1.0 (nothing to find, nothing found).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    return gt, pred


def pixel_dice(gt: np.ndarray, pred: np.ndarray) -> float:
    """Dice ``2|G∩P| / (|G|+|P|)`` of the foregrounds (``> 0``) of two same-shape images."""
    gt, pred = _check_pair(gt, pred)
    g, p = gt > 0, pred > 0
    total = int(g.sum()) + int(p.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(g, p).sum()) / total


def pixel_iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """Jaccard index ``|G∩P| / |G∪P|`` of the foregrounds (``> 0``)."""
    gt, pred = _check_pair(gt, pred)
    g, p = gt > 0, pred > 0
    union = int(np.logical_or(g, p).sum())
    return 1.0 if union == 0 else int(np.logical_and(g, p).sum()) / union


@dataclass(frozen=True)
class Overlaps:
    """Contingency table of two label images.

    ``intersection[i, j]`` is the pixel count of ground-truth object ``i`` and predicted object
    ``j`` (row / column 0 = background); ``gt_ids`` / ``pred_ids`` map rows / columns back to the
    original ids.
    """

    intersection: np.ndarray
    gt_ids: np.ndarray
    pred_ids: np.ndarray

    @property
    def gt_areas(self) -> np.ndarray:
        return self.intersection.sum(axis=1)[1:]

    @property
    def pred_areas(self) -> np.ndarray:
        return self.intersection.sum(axis=0)[1:]

    def iou(self) -> np.ndarray:
        """``n_gt × n_pred`` IoU matrix of the objects (background excluded)."""
        inter = self.intersection[1:, 1:].astype(np.float64)
        union = self.gt_areas[:, None] + self.pred_areas[None, :] - inter
        return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _dense_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ids present (0 first) and each pixel's index into them."""
    flat = labels.ravel()
    if flat.dtype.kind in "ui" and flat.size and flat.min() >= 0 and flat.max() < 1 << 24:
        # O(n) lookup table instead of a sort: ids are small non-negative integers.
        flat = flat.astype(np.intp, copy=False)
        present = np.bincount(flat) > 0
        present[0] = True
        ids = np.flatnonzero(present)
        lut = np.zeros(present.size, np.int64)
        lut[ids] = np.arange(ids.size)
        return ids, lut[flat]
    ids, inverse = np.unique(flat, return_inverse=True)
    if ids[0] != 0:  # make row / column 0 the background even when none is present
        ids = np.concatenate([[0], ids])
        inverse = inverse + 1
    return ids, inverse


def overlaps(gt: np.ndarray, pred: np.ndarray) -> Overlaps:
    """Contingency table of ``gt`` and ``pred`` (any integer ids, 0 = background)."""
    gt, pred = _check_pair(gt, pred)
    gt_ids, g = _dense_ids(gt)
    pred_ids, p = _dense_ids(pred)
    n_pred = pred_ids.size
    table = np.bincount(g * n_pred + p, minlength=gt_ids.size * n_pred)
    return Overlaps(table.reshape(gt_ids.size, n_pred), gt_ids, pred_ids)


@dataclass(frozen=True)
class InstanceScores:
    """Detection scores at one IoU threshold; ``pairs`` are matched ``(gt_id, pred_id)``."""

    f1: float
    precision: float
    recall: float
    tp: int
    fp: int
    fn: int
    mean_matched_iou: float
    pairs: tuple[tuple[int, int], ...] = ()


def match_instances(
    gt: np.ndarray, pred: np.ndarray, iou_threshold: float = 0.5, table: Overlaps | None = None
) -> InstanceScores:
    """One-to-one matching of objects with ``IoU >= iou_threshold``.

    At thresholds above 0.5 a match is unique by construction; below it the assignment that
    maximizes the summed IoU (Hungarian algorithm) is used.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    table = overlaps(gt, pred) if table is None else table
    iou = table.iou()
    n_gt, n_pred = iou.shape
    if iou_threshold > 0.5:
        rows, cols = np.nonzero(iou >= iou_threshold)
    elif n_gt and n_pred:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(iou, maximize=True)
        keep = iou[rows, cols] >= iou_threshold
        rows, cols = rows[keep], cols[keep]
    else:
        rows = cols = np.zeros(0, int)
    tp = int(rows.size)
    fp, fn = n_pred - tp, n_gt - tp
    precision = tp / n_pred if n_pred else float(n_gt == 0)
    recall = tp / n_gt if n_gt else float(n_pred == 0)
    f1 = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0
    pairs = tuple(
        (int(table.gt_ids[r + 1]), int(table.pred_ids[c + 1])) for r, c in zip(rows, cols)
    )
    mean_iou = float(iou[rows, cols].mean()) if tp else 0.0
    return InstanceScores(f1, precision, recall, tp, fp, fn, mean_iou, pairs)


def instance_f1(gt: np.ndarray, pred: np.ndarray, iou_threshold: float = 0.5) -> InstanceScores:
    """Object F1 ``2TP / (2TP + FP + FN)`` with precision / recall at ``iou_threshold``."""
    return match_instances(gt, pred, iou_threshold)


def aggregated_jaccard_index(gt: np.ndarray, pred: np.ndarray) -> float:
    """Aggregated Jaccard Index (Kumar et al., IEEE TMI 2017).

    Each ground-truth object ``G_i`` is paired with the predicted object ``S_j`` of highest IoU
    (a prediction may serve several objects); ``C = Σ|G_i ∩ S_j|``, ``U = Σ|G_i ∪ S_j|`` plus the
    areas of predictions never chosen. A ground-truth object that overlaps no prediction adds its
    area to ``U`` only. Returns ``C / U``.
    """
    table = overlaps(gt, pred)
    inter = table.intersection[1:, 1:]
    gt_areas, pred_areas = table.gt_areas, table.pred_areas
    if inter.shape[0] == 0:
        return 1.0 if inter.shape[1] == 0 else 0.0
    if inter.shape[1] == 0:
        return 0.0
    best = table.iou().argmax(axis=1)
    rows = np.arange(inter.shape[0])
    best_inter = inter[rows, best]
    hit = best_inter > 0
    c = int(best_inter[hit].sum())
    u = int((gt_areas[hit] + pred_areas[best[hit]] - best_inter[hit]).sum())
    u += int(gt_areas[~hit].sum())
    used = np.zeros(inter.shape[1], bool)
    used[best[hit]] = True
    u += int(pred_areas[~used].sum())
    return c / u if u else 1.0
