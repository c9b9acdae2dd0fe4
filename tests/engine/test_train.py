"""train_job on tiny synthetic folders with the tiny model (a few steps each)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from napari_sa2net._progress import run_job
from napari_sa2net.engine.state import last_path, state_path
from napari_sa2net.engine.train import TrainConfig, split_validation, train_job
from napari_sa2net.model import load_model

from .conftest import check_memory_kept_and_freed


def config(folders: dict[str, Path], out: Path, **kwargs) -> TrainConfig:
    settings = {
        "images": folders["images"],
        "labels": folders["labels"],
        "val_images": folders["val_images"],
        "val_labels": folders["val_labels"],
        "out": out,
        "config": "sa2net-tiny",
        "epochs": 2,
        "steps_per_epoch": 2,
        "batch_size": 2,
        "crop": 64,
        "device": "cpu",
    }
    settings.update(kwargs)
    return TrainConfig(**settings)


def test_two_epochs_write_loadable_best_and_last(tiny_folders, tmp_path):
    out = tmp_path / "run" / "model.pt"
    events = []
    result = run_job(train_job(config(tiny_folders, out)), events.append)
    assert "cpu" in events[0].message
    epochs = [e for e in events if e.stage == "epoch" and e.metrics]
    batches = [e for e in events if e.stage == "batch"]
    assert [e.current for e in epochs] == [1, 2]
    assert {"loss", "val_dice", "val_f1"} <= set(epochs[-1].metrics)
    assert len(batches) == 4 and all(e.level == 1 for e in batches)
    assert result.epochs_done == 2 and result.stopped == "epochs"
    assert result.best_path == out and result.last_path == last_path(out)
    assert state_path(last_path(out)).is_file()
    last = load_model(result.last_path)
    assert last.metadata["training"]["epochs_done"] == 2
    assert last.metadata["training"]["val_names"] == ["img0"]
    best = load_model(out)
    assert best.metadata["training"]["best_epoch"] == result.best_epoch
    assert best.num_classes == 3 and best.in_channels == 1


def test_resume_continues_the_epoch_count(tiny_folders, tmp_path):
    out = tmp_path / "model.pt"
    run_job(train_job(config(tiny_folders, out, epochs=1)))
    events = []
    result = run_job(
        train_job(config(tiny_folders, out, epochs=3, resume=last_path(out))), events.append
    )
    assert "resumed at epoch 1" in events[0].message
    assert [e.current for e in events if e.stage == "epoch" and e.metrics] == [2, 3]
    assert result.epochs_done == 3
    assert [h["epoch"] for h in result.history] == [1, 2, 3]


def test_cancel_leaves_complete_files_only(tiny_folders, tmp_path):
    out = tmp_path / "model.pt"
    job = train_job(config(tiny_folders, out, epochs=5))
    for event in job:
        if event.stage == "epoch" and event.current == 1 and event.metrics:
            break
    next(job)  # one batch of epoch 2
    job.close()
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert names == ["model.last.pt", "model.last.state.pt", "model.pt"]
    assert load_model(out).metadata["training"]["epochs_done"] == 1


def test_time_budget_stops_after_the_crossing_epoch(tiny_folders, tmp_path):
    cfg = config(tiny_folders, tmp_path / "m.pt", epochs=None, time_budget_minutes=1e-4)
    result = run_job(train_job(cfg))
    assert result.epochs_done == 1 and result.stopped == "time budget"


def test_binary_mode_and_held_out_validation(tiny_folders, tmp_path):
    cfg = config(
        tiny_folders, tmp_path / "b.pt", mode="binary", epochs=1, val_images=None, val_labels=None
    )
    events = []
    result = run_job(train_job(cfg), events.append)
    assert "2 train / 1 val images" in events[0].message
    model = load_model(result.last_path)
    assert model.num_classes == 1
    assert len(model.metadata["training"]["val_names"]) == 1


def test_split_validation_needs_two_images(tiny_folders):
    from napari_sa2net.engine.data import load_labelled_folder

    items = load_labelled_folder(tiny_folders["images"], tiny_folders["labels"])
    train, val = split_validation(items, 0.1, seed=0)
    assert len(train) == 2 and len(val) == 1
    with pytest.raises(ValueError, match="--val-images"):
        split_validation(items[:1], 0.1, seed=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "semantic"}, r"mode \(--mode\)"),
        ({"epochs": 0}, r"epochs \(--epochs\)"),
        ({"crop": 8}, r"crop \(--crop\)"),
        ({"batch_size": 0}, r"batch_size \(--batch-size\) must be at least 1"),
        ({"restart_epochs": 0}, "^restart_epochs must"),  # no flag: the Python name only
        ({"val_labels": None}, r"val_images \(--val-images\) and val_labels \(--val-labels\)"),
        ({"out": Path("model.ckpt")}, r"out \(--out\) must be a \.pt"),
    ],
)
def test_bad_settings_are_refused(tiny_folders, tmp_path, change, message):
    settings = {"out": tmp_path / "m.pt", **change}
    with pytest.raises(ValueError, match=message):
        next(train_job(config(tiny_folders, **settings)))


def test_existing_output_is_not_overwritten(tiny_folders, tmp_path):
    out = tmp_path / "m.pt"
    out.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        next(train_job(config(tiny_folders, out)))
    assert out.read_bytes() == b"precious"


def test_a_previous_runs_last_checkpoint_is_not_overwritten(tiny_folders, tmp_path):
    previous = last_path(tmp_path / "m.pt")
    previous.write_bytes(b"earlier run")
    with pytest.raises(FileExistsError, match="--resume"):
        next(train_job(config(tiny_folders, tmp_path / "m.pt")))
    assert previous.read_bytes() == b"earlier run"


def test_scale_jitter_trains(tiny_folders, tmp_path):
    cfg = config(tiny_folders, tmp_path / "s.pt", epochs=1, scale_jitter=0.2)
    assert run_job(train_job(cfg)).epochs_done == 1
    with pytest.raises(ValueError, match="scale_jitter"):
        next(train_job(config(tiny_folders, tmp_path / "t.pt", scale_jitter=1.5)))


@pytest.mark.gpu
def test_mixed_precision_training_on_cuda(tiny_folders, tmp_path):
    events = []
    cfg = config(tiny_folders, tmp_path / "g.pt", device="cuda", epochs=1)
    result = run_job(train_job(cfg), events.append)
    assert "cuda" in events[0].message and result.device.startswith("cuda")
    assert load_model(result.last_path).metadata["training"]["device"].startswith("cuda")


def test_checkpoint_records_the_training_object_diameter(tiny_folders, tmp_path):
    from napari_sa2net.engine.data import load_labelled_folder
    from napari_sa2net.engine.targets import median_object_diameter
    from napari_sa2net.inference.rescale import DIAMETER_KEY

    out = tmp_path / "model.pt"
    run_job(train_job(config(tiny_folders, out, epochs=1, steps_per_epoch=1)))
    train = load_labelled_folder(tiny_folders["images"], tiny_folders["labels"])
    expected = median_object_diameter([it.labels for it in train])
    assert load_model(out).metadata[DIAMETER_KEY] == pytest.approx(expected)
    assert 5 < expected < 60  # the synthetic nuclei are tens of pixels across


def test_training_clears_partials_of_dead_runs_only(tiny_folders, tmp_path):
    from .test_finetune import dead_pid

    out = tmp_path / "run" / "model.pt"
    out.parent.mkdir()
    stale = out.parent / f".model.last.pt.partial-{dead_pid()}-0123abcd"
    live = out.parent / f".model.pt.partial-{os.getppid()}-0123abcd"  # another live run's
    for partial in (stale, live):
        partial.write_bytes(b"half a checkpoint")
    next(train_job(config(tiny_folders, out)))
    assert not stale.exists() and live.exists()


def test_touching_nuclei_options_train_and_bad_values_are_refused(tiny_folders, tmp_path):
    cfg = config(tiny_folders, tmp_path / "c.pt", epochs=1, contact_weight=5.0,
                 contact_bias=0.5, augment="wide", boundary_width=2)  # fmt: skip
    assert run_job(train_job(cfg)).epochs_done == 1
    recipe = load_model(tmp_path / "c.pt").metadata["training"]["recipe"]
    assert (recipe["contact_weight"], recipe["contact_bias"], recipe["augment"]) == (
        5.0, 0.5, "wide",
    )  # fmt: skip
    for change, message in [({"contact_weight": 0.5}, "contact_weight"),
                            ({"contact_bias": 1.0}, "contact_bias"),
                            ({"augment": "strong"}, "augment")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            next(train_job(config(tiny_folders, tmp_path / "x.pt", **change)))


def test_boundary_width_follows_the_objects_size_unless_given(tiny_folders, tmp_path):
    from napari_sa2net.engine.train_config import auto_boundary_width
    from napari_sa2net.inference.rescale import DIAMETER_KEY

    assert [auto_boundary_width(d) for d in (8, 12, 26.6, 36, 45, 120)] == [1, 1, 3, 4, 5, 5]
    out = tmp_path / "auto.pt"
    events = []
    run_job(train_job(config(tiny_folders, out, epochs=1, steps_per_epoch=1)), events.append)
    model = load_model(out)
    width = model.metadata["training"]["recipe"]["boundary_width"]
    assert width == auto_boundary_width(model.metadata[DIAMETER_KEY])
    assert f"boundaries {width} px" in events[0].message
    given = tmp_path / "given.pt"
    run_job(train_job(config(tiny_folders, given, epochs=1, steps_per_epoch=1, boundary_width=4)))
    assert load_model(given).metadata["training"]["recipe"]["boundary_width"] == 4
    with pytest.raises(ValueError, match="boundary_width"):
        next(train_job(config(tiny_folders, tmp_path / "x.pt", boundary_width=0)))


def test_a_resumed_run_keeps_the_boundary_width_it_was_trained_with(tiny_folders, tmp_path):
    out = tmp_path / "model.pt"
    run_job(train_job(config(tiny_folders, out, epochs=1, steps_per_epoch=1, boundary_width=5)))
    events = []
    resumed = config(tiny_folders, out, epochs=2, steps_per_epoch=1, resume=last_path(out))
    run_job(train_job(resumed), events.append)
    assert "boundaries 5 px" in events[0].message
    assert load_model(last_path(out)).metadata["training"]["recipe"]["boundary_width"] == 5


def test_training_keeps_freed_pages_and_hands_them_back_when_done_or_cancelled(
    tiny_folders, tmp_path, heap_calls
):
    # Each step frees and allocates the same activations: kept pages, no refaulting (CPU
    # training 0.76 x the time); handed back at the end, also when the job is cancelled.
    check_memory_kept_and_freed(
        heap_calls,
        train_job(config(tiny_folders, tmp_path / "a.pt", epochs=1)),
        train_job(config(tiny_folders, tmp_path / "b.pt", epochs=3)),
    )
