"""The centre map: targets, sampling, loss and a short training run with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sa2net._progress import run_job
from napari_sa2net.engine.augment import Augmentation
from napari_sa2net.engine.data import CropSampler
from napari_sa2net.engine.losses import SegmentationLoss, centre_loss
from napari_sa2net.engine.targets import (
    CENTRE_SCALE,
    IGNORE,
    centre_map,
    labels_to_classes,
    make_target,
)
from napari_sa2net.engine.train import train_job
from napari_sa2net.model import load_model

from .test_train import config


def two_touching_discs() -> np.ndarray:
    yy, xx = np.mgrid[:40, :60]
    labels = np.zeros((40, 60), np.uint16)
    labels[(yy - 20) ** 2 + (xx - 20) ** 2 <= 100] = 1
    labels[((yy - 20) ** 2 + (xx - 38) ** 2 <= 100) & (labels == 0)] = 7
    return labels


def test_centre_map_peaks_once_per_object_and_dips_where_they_touch():
    labels = two_touching_discs()
    centre = centre_map(labels)
    assert centre.dtype == np.float32 and centre[labels == 0].max() == 0
    for index in (1, 7):
        inside = np.where(labels == index, centre, 0)
        assert inside.max() == pytest.approx(1.0)
        assert centre[labels == index].min() > 0  # every object pixel is above the background
    assert centre[20, 20] == pytest.approx(1.0)  # the whole disc's centre
    # along the line through both centres the map falls to its edge value where they meet
    row = centre[20, 20:40]
    meet = int(np.flatnonzero(labels[20, 20:40] == 7)[0])
    assert abs(int(row.argmin()) - meet) <= 1 and row.min() < 0.25
    assert row[-1] > 0.9  # and rises again to the second disc's peak


def test_centre_targets_stack_classes_and_the_scaled_map():
    labels = two_touching_discs()
    target = make_target(labels, "instance", 2, centre=True)
    assert target.shape == (*labels.shape, 2) and target.dtype == np.uint8
    np.testing.assert_array_equal(target[..., 0], labels_to_classes(labels, 2))
    assert target[20, 20, 1] == CENTRE_SCALE and target[0, 0, 1] == 0
    assert make_target(labels, "instance", 2).shape == labels.shape  # without: classes only


def test_sampler_turns_and_warps_the_centre_map_with_the_classes():
    labels = [two_touching_discs(), two_touching_discs()[:, ::-1].copy()]
    images = [(lab > 0)[..., None].astype(np.float32) for lab in labels]
    targets = [make_target(lab, "instance", 2, centre=True) for lab in labels]
    warp = Augmentation(p_affine=1.0, max_rotation=30, scale_range=(0.8, 1.2))
    x, y = CropSampler(images, targets, 32, seed=3, augmentation=warp).batch(6)
    assert y.shape == (6, 32, 32, 2)
    classes, code = y[..., 0], y[..., 1]
    assert np.array_equal(classes == IGNORE, code == IGNORE)  # padding ignored in both
    assert (code[classes == 0] == 0).all() and (code[(classes == 1)] > 0).all()
    # the image (1 on objects) and the centre map were warped by the same transform
    assert (code[(x[:, 0] < 0.01) & (classes != IGNORE)] == 0).mean() > 0.95


def test_centre_loss_is_low_for_the_right_map_and_ignores_ignored_pixels():
    code = torch.tensor([[[0, 125, 250], [250, IGNORE, 0]]], dtype=torch.uint8)
    value = code.float() / CENTRE_SCALE
    right = torch.logit(value.clamp(1e-4, 1 - 1e-4))
    wrong = -right
    assert centre_loss(right, code) < centre_loss(wrong, code)
    changed = right.clone()
    changed[0, 1, 1] = 50.0  # an ignored pixel's logit changes nothing
    assert centre_loss(changed, code) == centre_loss(right, code)


def test_segmentation_loss_with_centre_adds_the_centre_term_on_the_last_plane():
    labels = two_touching_discs()
    target = torch.from_numpy(
        make_target(labels, "instance", 2, centre=True)[None].astype(np.int64)
    )
    logits = torch.zeros(1, 4, *labels.shape, requires_grad=True)
    loss = SegmentationLoss("instance", centre=True)
    plain = SegmentationLoss("instance")(logits[:, :3], target[..., 0])
    total = loss((logits, logits), target)
    code = target[..., 1]
    expected = 2 * (plain + centre_loss(logits[:, 3], code))
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    total.backward()
    assert logits.grad[:, 3].abs().sum() > 0
    with pytest.raises(ValueError, match="B×H×W×2"):
        loss(logits, target[..., 0])


def test_training_with_a_centre_map_writes_a_centre_model(tiny_folders, tmp_path):
    out = tmp_path / "centre.pt"
    events = []
    result = run_job(train_job(config(tiny_folders, out, centre=True)), events.append)
    assert "centre map" in events[0].message
    model = load_model(result.last_path)
    assert model.centre and model.num_outputs == 4
    assert model.metadata["training"]["recipe"]["centre"] is True
    with torch.no_grad():
        probs = model.probabilities(model(torch.rand(1, 1, 32, 32)))
    assert probs.shape == (1, 4, 32, 32)
    torch.testing.assert_close(probs[:, :3].sum(1), torch.ones(1, 32, 32))
    # a resumed run must keep the model's outputs
    with pytest.raises(ValueError, match="centre map"):
        run_job(train_job(config(tiny_folders, tmp_path / "b.pt", resume=result.last_path)))
