"""Mixed precision: one code path (autocast + loss scaling) for training and finetuning."""

from __future__ import annotations

import torch

from napari_sa2net._progress import run_job
from napari_sa2net.engine import finetune, precision, train
from napari_sa2net.engine.precision import MixedPrecision, needs_loss_scaling
from napari_sa2net.model import create_model

from .conftest import nuclei_image, touching_nuclei
from .test_train import config


def test_loss_scaling_exactly_where_autocast_is_float16():
    assert needs_loss_scaling("cuda", True, bf16_supported=False)
    assert not needs_loss_scaling("cuda", True, bf16_supported=True)
    assert not needs_loss_scaling("cuda", False, bf16_supported=False)
    assert not needs_loss_scaling("cpu", True, bf16_supported=False)


def test_a_step_on_the_cpu_is_a_plain_float32_step():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 1)
    before = layer.weight.detach().clone()
    amp = MixedPrecision(torch.device("cpu"))
    with amp.autocast():
        loss = layer(torch.ones(2, 3)).pow(2).sum()
    amp.step(loss, torch.optim.SGD(layer.parameters(), lr=0.1))
    assert not amp.scaler.is_enabled()
    assert not torch.equal(layer.weight, before)


def test_training_and_finetuning_both_step_through_mixed_precision(
    tiny_folders, tmp_path, monkeypatch
):
    made, steps = [], []
    original = precision.MixedPrecision.step

    class Spy(MixedPrecision):
        def __init__(self, device, enabled=True):
            super().__init__(device, enabled)
            made.append(enabled)

        def step(self, loss, optimizer):
            steps.append(1)
            original(self, loss, optimizer)

    monkeypatch.setattr(train, "MixedPrecision", Spy)
    monkeypatch.setattr(finetune, "MixedPrecision", Spy)
    run_job(train.train_job(config(tiny_folders, tmp_path / "m.pt", epochs=1, steps_per_epoch=2)))
    labels = touching_nuclei((96, 96), seed=4)
    model = create_model("sa2net-tiny")
    run_job(
        finetune.finetune_job(
            model, nuclei_image(labels), labels, epochs=1, steps_per_epoch=2, batch_size=2,
            crop=64, device="cpu", amp=False,
        )
    )  # fmt: skip
    assert made == [True, False] and len(steps) == 4  # 2 training + 2 finetuning steps
