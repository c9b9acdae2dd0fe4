"""Metrics against hand-computed tiny cases."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_sa2net.engine.metrics import (
    aggregated_jaccard_index,
    instance_f1,
    match_instances,
    overlaps,
    pixel_dice,
    pixel_iou,
)


def shifted_squares() -> tuple[np.ndarray, np.ndarray]:
    """A 2×2 object and the same object shifted by one column: overlap 2, union 6."""
    gt = np.zeros((4, 5), np.uint16)
    pred = np.zeros((4, 5), np.uint16)
    gt[1:3, 1:3] = 1
    pred[1:3, 2:4] = 9
    return gt, pred


def test_pixel_dice_and_iou_hand_case():
    gt, pred = shifted_squares()
    assert pixel_dice(gt, pred) == pytest.approx(2 * 2 / (4 + 4))
    assert pixel_iou(gt, pred) == pytest.approx(2 / 6)


def test_pixel_metrics_empty_images_are_perfect_and_shape_is_checked():
    empty = np.zeros((3, 3), int)
    assert pixel_dice(empty, empty) == 1.0
    assert pixel_iou(empty, empty) == 1.0
    full = np.ones((3, 3), int)
    assert pixel_dice(empty, full) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        pixel_dice(empty, np.zeros((3, 4), int))


def test_contingency_table_counts_overlaps():
    gt, pred = shifted_squares()
    table = overlaps(gt, pred)
    assert table.gt_ids.tolist() == [0, 1]
    assert table.pred_ids.tolist() == [0, 9]
    assert table.intersection.tolist() == [[14, 2], [2, 2]]
    assert table.iou() == pytest.approx(np.array([[2 / 6]]))


def test_instance_f1_threshold_decides_the_match():
    gt, pred = shifted_squares()
    strict = instance_f1(gt, pred, 0.5)
    assert (strict.tp, strict.fp, strict.fn, strict.f1) == (0, 1, 1, 0.0)
    loose = instance_f1(gt, pred, 0.3)  # below 0.5: Hungarian matching
    assert (loose.tp, loose.fp, loose.fn, loose.f1) == (1, 0, 0, 1.0)
    assert loose.pairs == ((1, 9),)
    assert loose.mean_matched_iou == pytest.approx(2 / 6)


def test_instance_f1_counts_hits_misses_and_spurious_objects():
    gt = np.zeros((6, 12), np.int32)
    pred = np.zeros_like(gt)
    gt[0:2, 0:2], gt[0:2, 4:6], gt[4:6, 0:2] = 1, 2, 3
    pred[0:2, 0:2], pred[0:2, 4:6] = 7, 8  # two exact hits
    pred[4:6, 8:10] = 9  # spurious; gt 3 is missed
    scores = match_instances(gt, pred, 0.5)
    assert (scores.tp, scores.fp, scores.fn) == (2, 1, 1)
    assert scores.precision == pytest.approx(2 / 3)
    assert scores.recall == pytest.approx(2 / 3)
    assert scores.f1 == pytest.approx(2 / 3)
    assert set(scores.pairs) == {(1, 7), (2, 8)}


def test_instance_f1_at_075_rejects_a_mediocre_overlap():
    gt = np.zeros((4, 10), int)
    pred = np.zeros_like(gt)
    gt[0:4, 0:4] = 1  # 16 px
    pred[0:4, 1:4] = 1  # 12 px inside: IoU 0.75 exactly
    pred[0:4, 0:1] = 0
    assert instance_f1(gt, pred, 0.75).f1 == 1.0
    pred[0, 1] = 0  # IoU 11/16 < 0.75
    assert instance_f1(gt, pred, 0.75).f1 == 0.0
    assert instance_f1(gt, pred, 0.5).f1 == 1.0


def test_instance_f1_empty_cases():
    empty = np.zeros((3, 3), int)
    one = empty.copy()
    one[1, 1] = 1
    assert instance_f1(empty, empty).f1 == 1.0
    assert instance_f1(empty, one).f1 == 0.0
    assert instance_f1(one, empty).recall == 0.0
    with pytest.raises(ValueError, match="iou_threshold"):
        instance_f1(one, one, 0.0)


def test_aji_hand_case_with_shared_and_unused_predictions():
    gt = np.array([[1, 1, 1, 1, 0, 2, 2, 2, 2, 0]])
    pred = np.array([[5, 5, 5, 5, 5, 5, 0, 0, 0, 7]])
    # G1-S5: I 4, U 6. G2's best is S5 too (I 1, U 9). S7 unused adds 1 to U.
    assert aggregated_jaccard_index(gt, pred) == pytest.approx((4 + 1) / (6 + 9 + 1))


def test_aji_misses_and_trivial_cases():
    gt = np.array([[1, 1, 0, 0]])
    pred = np.array([[0, 0, 3, 3]])
    assert aggregated_jaccard_index(gt, pred) == 0.0
    assert aggregated_jaccard_index(gt, gt) == 1.0
    assert aggregated_jaccard_index(np.zeros_like(gt), np.zeros_like(gt)) == 1.0
    assert aggregated_jaccard_index(gt, np.zeros_like(gt)) == 0.0


def test_metrics_are_fast_on_a_large_image_with_many_objects():
    rng = np.random.default_rng(0)
    gt = np.zeros((1024, 1024), np.uint32)
    for i in range(200):  # 200 squares of 30×30 on a grid
        y, x = divmod(i, 14)
        gt[y * 70 : y * 70 + 30, x * 70 : x * 70 + 30] = i + 1
    pred = np.roll(gt, 3, axis=1)
    pred[rng.random(gt.shape) < 0.01] = 0
    start = time.perf_counter()
    f1 = instance_f1(gt, pred, 0.5).f1
    aji = aggregated_jaccard_index(gt, pred)
    elapsed = time.perf_counter() - start
    assert f1 == 1.0
    assert 0.7 < aji < 0.9
    assert elapsed < 5.0  # about 0.1 s unloaded; generous for a busy 2-core machine


def test_huge_ids_give_the_same_scores():
    gt, pred = shifted_squares()
    big = pred.astype(np.uint64) * (1 << 40)  # takes the sorting path instead of a lookup table
    assert overlaps(gt, big).intersection.tolist() == overlaps(gt, pred).intersection.tolist()
    assert instance_f1(gt, big, 0.3).pairs == ((1, 9 << 40),)
    small = pred.astype(np.uint64)  # lookup-table path with an unsigned 64-bit dtype
    assert overlaps(gt, small).intersection.tolist() == overlaps(gt, pred).intersection.tolist()
