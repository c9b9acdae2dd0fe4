"""finetune_job: regions, ignored pixels, held-out validation, previews, best checkpoint."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_sa2net._progress import run_job
from napari_sa2net.engine.finetune import FinetuneProgress, finetune_job
from napari_sa2net.engine.regions import plan_regions, regions_from_labels, split_regions
from napari_sa2net.model import create_model, load_model

from .conftest import check_memory_kept_and_freed, nuclei_image, touching_nuclei

REGIONS = [(0, 0, 48, 96), (48, 0, 96, 96)]
FAST = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "crop": 64, "device": "cpu"}


@pytest.fixture
def scene():
    torch.manual_seed(0)
    labels = touching_nuclei((96, 96), seed=4)
    return create_model("sa2net-tiny"), nuclei_image(labels), labels


def test_finetune_writes_best_and_previews_held_out_region(scene, tmp_path):
    model, image, labels = scene
    before = {k: v.clone() for k, v in model.state_dict().items()}
    events = []
    result = run_job(
        finetune_job(model, image, labels, REGIONS, out=tmp_path / "ft.pt", **FAST), events.append
    )
    epochs = [e for e in events if isinstance(e, FinetuneProgress) and e.current > 0]
    assert "cpu" in events[0].message and len(epochs) == 2
    assert {"loss", "val_dice", "val_f1"} <= set(epochs[-1].metrics)
    (y0, x0, y1, x1) = epochs[-1].preview_region
    assert epochs[-1].preview.shape == (3, y1 - y0, x1 - x0)
    assert len(result.train_regions) == len(result.val_regions) == 1
    saved = load_model(tmp_path / "ft.pt")
    assert saved.metadata["finetune"]["epoch"] == result.best_epoch
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # a copy


def test_pixels_outside_regions_are_ignored(scene):
    model, image, labels = scene
    other = labels.copy()
    other[50:, :] = 0  # differs only outside the single region below
    region = [(0, 0, 48, 96)]
    runs = [
        run_job(finetune_job(model, image, lab, region, val_fraction=0.0, **FAST))
        for lab in (labels, other)
    ]
    assert [h["loss"] for h in runs[0].history] == [h["loss"] for h in runs[1].history]


def test_frozen_encoder_stays_unchanged(scene):
    model, image, labels = scene
    result = run_job(finetune_job(model, image, labels, REGIONS, **FAST))
    for name, value in result.model.encoder.state_dict().items():
        assert torch.equal(value, model.encoder.state_dict()[name]), name


def test_regions_from_labels_and_splits():
    labels = np.zeros((50, 60), np.uint16)
    labels[10:20, 10:20] = 1
    labels[30:40, 45:55] = 2
    assert regions_from_labels(labels, margin=5) == [(5, 5, 25, 25), (25, 40, 45, 60)]
    train, val = split_regions([(0, 0, 40, 40)], 0.25, seed=0)
    assert train == [(0, 0, 30, 40)] and val == [(30, 0, 40, 40)]
    train, val = split_regions([(0, 0, 8, 8)] * 5, 0.2, seed=0)
    assert len(train) == 4 and len(val) == 1


def test_bad_finetune_input(scene, tmp_path):
    model, image, labels = scene
    with pytest.raises(ValueError, match="nothing is painted"):
        next(finetune_job(model, image, np.zeros_like(labels), **FAST))
    with pytest.raises(ValueError, match="larger rectangle"):
        next(finetune_job(model, image, labels, [(0, 0, 2, 2)], **FAST))
    with pytest.raises(ValueError, match="same height and width"):
        next(finetune_job(model, image[:50], labels, **FAST))
    with pytest.raises(ValueError, match="channel"):
        next(finetune_job(model, np.stack([image] * 3, -1), labels, **FAST))


def test_cancel_keeps_a_complete_best_checkpoint(scene, tmp_path):
    model, image, labels = scene
    job = finetune_job(model, image, labels, REGIONS, out=tmp_path / "ft.pt", **FAST)
    for event in job:
        if isinstance(event, FinetuneProgress) and event.current == 1:
            break
    job.close()
    assert [p.name for p in tmp_path.iterdir()] == ["ft.pt"]
    assert load_model(tmp_path / "ft.pt").metadata["finetune"]["epoch"] == 1


def test_nothing_painted_where_it_counts_is_refused_before_training(scene):
    model, image, labels = scene
    empty = np.zeros_like(labels)
    with pytest.raises(ValueError, match=r"nothing is painted inside the 1 region\(s\)"):
        next(finetune_job(model, image, empty, [(0, 0, 48, 96)], **FAST))
    bottom_only = labels.copy()
    bottom_only[:80] = 0  # the single region's bottom 20 % is held out: all paint is there
    with pytest.raises(ValueError, match=r"held out for validation.*val_fraction"):
        next(finetune_job(model, image, bottom_only, [(0, 0, 96, 96)], **FAST))
    region = [(0, 0, 96, 96)]
    assert plan_regions(bottom_only, region, 0.0) == (region, [])  # nothing held out: fine


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_finetuning_clears_partials_of_dead_runs_and_uses_the_margin(scene, tmp_path):
    model, image, labels = scene
    stale = tmp_path / f".ft.pt.partial-{dead_pid()}-0123abcd"
    stale.write_bytes(b"half a checkpoint")
    options = {**FAST, "epochs": 1, "steps_per_epoch": 1, "val_fraction": 0.0, "margin": 3}
    result = run_job(finetune_job(model, image, labels, out=tmp_path / "ft.pt", **options))
    assert not stale.exists()
    assert result.train_regions == regions_from_labels(labels, margin=3)


def test_finetuning_keeps_the_boundary_width_and_contact_weight_of_the_training(scene):
    from napari_sa2net.engine.finetune import FinetuneSettings, _Finetuner

    model, image, labels = scene
    plain = _Finetuner(model, image, labels, REGIONS, FinetuneSettings(**FAST))
    model.metadata = {"training": {"recipe": {"boundary_width": 2, "contact_weight": 5.0}}}
    wide = _Finetuner(model, image, labels, REGIONS, FinetuneSettings(**FAST))
    boundary = [int((run.sampler.targets[0] == 2).sum()) for run in (plain, wide)]
    assert boundary[1] > 1.5 * boundary[0]
    assert (plain.loss_fn.contact_weight, wide.loss_fn.contact_weight) == (1.0, 5.0)
    assert wide.loss_fn.contact_radius == 2


def test_finetuning_keeps_freed_pages_and_hands_them_back_when_done_or_cancelled(
    scene, heap_calls
):
    model, image, labels = scene
    check_memory_kept_and_freed(
        heap_calls,
        finetune_job(model, image, labels, REGIONS, **{**FAST, "epochs": 1}),
        finetune_job(model, image, labels, REGIONS, **FAST),
    )
