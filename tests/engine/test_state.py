"""Training state files are plain data: a payload never runs, a bad file is one clear line."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from napari_sa2net._progress import run_job
from napari_sa2net.cli import main
from napari_sa2net.engine.state import last_path, load_state, restore_state, state_path
from napari_sa2net.engine.train import TrainConfig, train_job

from .conftest import write_folder

FAST = {"config": "sa2net-tiny", "steps_per_epoch": 1, "batch_size": 1, "crop": 64}


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """A finished one-epoch run (images, labels, out) to copy and resume from."""
    root = tmp_path_factory.mktemp("run")
    images, labels = write_folder(root, 2)
    out = root / "out" / "m.pt"
    cfg = TrainConfig(images=images, labels=labels, out=out, epochs=1, device="cpu", **FAST)
    run_job(train_job(cfg))
    return images, labels, out


@pytest.fixture
def run_copy(one_epoch, tmp_path):
    images, labels, out = one_epoch
    folder = shutil.copytree(out.parent, tmp_path / "out")
    return images, labels, folder / out.name


def resume_args(images, labels, out, epochs=2):
    args = ["train", "--images", str(images), "--labels", str(labels), "--out", str(out)]
    args += ["--resume", str(last_path(out)), "--epochs", str(epochs), "--device", "cpu"]
    args += ["--config", "sa2net-tiny", "--steps-per-epoch", "1", "--batch-size", "1"]
    return [*args, "--crop", "64", "--quiet"]


def test_resume_with_a_payload_state_is_one_line_and_runs_nothing(
    run_copy, tmp_path, capsys, write_payload
):
    images, labels, out = run_copy
    marker = tmp_path / "ran"
    write_payload(state_path(last_path(out)), marker)
    assert main(resume_args(images, labels, out)) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert err.count("\n") == 1 and err.startswith("sa2net train: error: ")
    assert str(state_path(last_path(out))) in err and "delete it" in err


def test_a_state_saved_with_numpy_values_asks_to_delete_it(run_copy):
    *_, out = run_copy
    path = state_path(last_path(out))
    state = torch.load(path, weights_only=True)
    state["best_metrics"] = {"val_f1": np.float64(0.5)}  # what a careless writer would store
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"m\.last\.state\.pt is not .*delete it") as info:
        load_state(path)
    assert "\n" not in str(info.value)


def test_the_written_state_is_plain_and_resumes(run_copy, capsys):
    images, labels, out = run_copy
    state = load_state(state_path(last_path(out)))
    assert isinstance(state["sampler_rng"]["state"]["state"], int) and state["epoch"] == 1
    assert main(resume_args(images, labels, out)) == 0
    assert "resumed at epoch 1" in capsys.readouterr().out


def test_incomplete_or_foreign_states_name_the_fix(tmp_path):
    path = tmp_path / "x.state.pt"
    torch.save({"epoch": 1}, path)
    with pytest.raises(ValueError, match=r"incomplete training state .*delete it"):
        load_state(path)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    foreign = {"optimizer": torch.optim.Adam(torch.nn.Linear(2, 2).parameters()).state_dict()}
    foreign["optimizer"]["param_groups"][0]["params"] = [0, 1, 2]  # another model's groups
    with pytest.raises(ValueError, match=r"x\.state\.pt does not fit this run .*delete it"):
        restore_state(
            foreign, path, optimizer=optimizer, scheduler=scheduler, scaler=None, rng=None
        )
