"""Losses: perfect predictions cost ~0, ignored pixels cost nothing, deep supervision sums."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_sa2net.engine.losses import (
    IGNORE,
    SegmentationLoss,
    balanced_bce_with_logits,
    binary_loss,
    cross_entropy,
    instance_loss,
    soft_dice_binary,
    soft_dice_multiclass,
)


def random_target(classes: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, classes, (2, 16, 16), generator=gen)


def perfect_logits(target: torch.Tensor, classes: int) -> torch.Tensor:
    if classes == 1:
        return (target.float() * 2 - 1)[:, None] * 30
    return torch.nn.functional.one_hot(target, classes).permute(0, 3, 1, 2).float() * 30


@pytest.mark.parametrize(("fn", "classes"), [(binary_loss, 1), (instance_loss, 3)])
def test_perfect_prediction_costs_almost_nothing(fn, classes):
    target = random_target(max(classes, 2))
    assert float(fn(perfect_logits(target, classes), target)) < 1e-3
    wrong = -perfect_logits(target, classes)
    assert float(fn(wrong, target)) > 0.5


def test_balanced_bce_hand_value():
    target = random_target(2)
    logits = torch.zeros(2, 1, 16, 16)
    assert float(balanced_bce_with_logits(logits, target)) == pytest.approx(math.log(2))


def test_balanced_bce_weighs_classes_equally():
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    target[0, 0, 0] = 1  # one positive pixel among 100
    logits = torch.zeros(1, 1, 10, 10)
    logits[0, 0, 0, 0] = -5.0  # the positive is wrong, all negatives at p = 0.5
    expected = 0.5 * math.log(1 + math.exp(5.0)) + 0.5 * math.log(2)
    assert float(balanced_bce_with_logits(logits, target)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("fn", "classes"),
    [
        (soft_dice_binary, 1),
        (balanced_bce_with_logits, 1),
        (soft_dice_multiclass, 3),
        (cross_entropy, 3),
        (binary_loss, 1),
        (instance_loss, 3),
    ],
)
def test_ignored_pixels_contribute_nothing(fn, classes):
    target = random_target(max(classes, 2), seed=1)
    logits = torch.randn(2, classes, 16, 16, generator=torch.Generator().manual_seed(2))
    ignored = target.clone()
    ignored[:, :, 8:] = IGNORE
    other = ignored.clone()
    other[:, :, 8:] = 0  # different "labels" under the ignore mask ...
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[:, :, 8:] = False
    x = logits.clone().requires_grad_(True)
    loss = fn(x, ignored)
    loss.backward()
    assert torch.all(x.grad[..., 8:] == 0)  # ... get no gradient
    assert float(fn(logits, other, valid)) == pytest.approx(float(loss), rel=1e-6)
    # cropping the ignored half away gives the same value
    assert float(fn(logits[..., :8], target[..., :8])) == pytest.approx(float(loss), rel=1e-5)


def test_all_ignored_gives_zero_loss():
    target = torch.full((1, 8, 8), IGNORE, dtype=torch.long)
    for fn, classes in ((binary_loss, 1), (instance_loss, 3)):
        assert float(fn(torch.randn(1, classes, 8, 8), target)) == pytest.approx(0.0, abs=1e-6)


def test_deep_supervision_sums_heads_with_weight_one():
    target = random_target(3)
    logits = torch.randn(2, 3, 16, 16)
    loss = SegmentationLoss("instance")
    single = float(loss(logits, target))
    assert float(loss((logits,) * 4, target)) == pytest.approx(4 * single, rel=1e-6)
    with pytest.raises(ValueError, match="mode"):
        SegmentationLoss("semantic")


def test_contact_mask_marks_the_boundary_between_touching_objects_only():
    from napari_sa2net.engine.losses import contact_mask
    from napari_sa2net.engine.targets import labels_to_classes

    labels = np.zeros((12, 20), np.uint16)
    labels[2:10, 2:10], labels[2:10, 10:18] = 1, 2
    target = torch.from_numpy(labels_to_classes(labels).astype(np.int64))[None]
    contact = contact_mask(target)[0].numpy()
    assert contact[3:9, 9:11].all()  # the two columns where 1 and 2 meet, minus their ends
    assert contact.sum() == 12


def test_contact_weight_raises_the_loss_of_a_merge_only():
    from napari_sa2net.engine.losses import SegmentationLoss
    from napari_sa2net.engine.targets import labels_to_classes

    labels = np.zeros((12, 20), np.uint16)
    labels[2:10, 2:10], labels[2:10, 10:18] = 1, 2
    target = torch.from_numpy(labels_to_classes(labels).astype(np.int64))[None]
    good = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 8 - 4
    merged = good.clone()
    merged[:, :, 3:9, 9:11] = torch.tensor([-4.0, 4.0, -4.0])[:, None, None]  # interior bridge
    outer = good.clone()
    outer[:, :, 3:9, 0:2] = torch.tensor([-4.0, 4.0, -4.0])[:, None, None]  # as many, outside
    plain, weighted = SegmentationLoss(), SegmentationLoss(contact_weight=5.0)
    assert weighted(merged, target) > 1.5 * plain(merged, target)
    assert weighted(outer, target) <= plain(outer, target)  # a weighted mean: others count less
    assert weighted(merged, target) > 1.5 * weighted(outer, target)
    with pytest.raises(ValueError, match="contact_weight"):
        SegmentationLoss(contact_weight=0.5)
