"""Automatic tile / batch sizes: one modest pass at a time on a CPU, full batches on a GPU."""

from __future__ import annotations

import pytest
import torch

from napari_sa2net.inference import sizing
from napari_sa2net.model import create_model


@pytest.fixture(scope="module")
def small():
    return create_model("sa2net-small", 1, 3).eval()


def _args(**kw):
    return {"overlap": 128, **kw}


def test_cpu_takes_one_modest_pass(small, monkeypatch):
    monkeypatch.setattr(sizing, "available_bytes", lambda device: 64 << 30)
    choice = sizing.choose(small, (8192, 8192), torch.device("cpu"), **_args())
    assert choice.batch_size == 1
    assert choice.bytes_per_batch <= sizing.CPU_PASS_BYTES
    assert choice.tile > 128 and choice.tile % 16 == 0


def test_cpu_with_little_memory_takes_smaller_tiles(small, monkeypatch):
    monkeypatch.setattr(sizing, "available_bytes", lambda device: 1 << 30)
    choice = sizing.choose(small, (8192, 8192), torch.device("cpu"), **_args())
    assert choice.bytes_per_batch <= 1 << 29 and choice.tile >= 256


def test_gpu_fills_batches(small, monkeypatch):
    monkeypatch.setattr(sizing, "available_bytes", lambda device: 40 << 30)
    choice = sizing.choose(small, (8192, 8192), torch.device("cuda"), **_args())
    assert choice.tile == max(sizing.TILE_CHOICES) and choice.batch_size > 4


def test_user_values_win(small, monkeypatch):
    monkeypatch.setattr(sizing, "available_bytes", lambda device: 64 << 30)
    choice = sizing.choose(
        small, (8192, 8192), torch.device("cpu"), **_args(tile=256, batch_size=3, overlap=64)
    )
    assert (choice.tile, choice.batch_size, choice.overlap) == (256, 3, 64)


def test_tile_never_exceeds_a_small_image(small, monkeypatch):
    monkeypatch.setattr(sizing, "available_bytes", lambda device: 64 << 30)
    choice = sizing.choose(small, (300, 200), torch.device("cpu"), **_args(overlap=32))
    assert choice.tile <= 304


def test_halo_is_measured_again_after_the_weights_change(monkeypatch):
    calls = []

    def fake_halo(net):
        calls.append(net)
        return 40 + len(calls)

    monkeypatch.setattr("napari_sa2net.model.suggested_halo", fake_halo)
    net = create_model("sa2net-tiny", 1, 3)
    assert sizing.model_halo(net) == sizing.model_halo(net) == 41
    with torch.no_grad():
        next(net.parameters()).add_(1.0)  # what an optimizer step or load_state_dict does
    assert sizing.model_halo(net) == 42
    assert len(calls) == 2
    assert net.metadata["halo"]["px"] == 42  # recorded: a checkpoint saved now carries it
    fresh = create_model("sa2net-tiny", 1, 3)
    fresh.load_state_dict(net.state_dict())
    fresh.metadata["halo"] = dict(net.metadata["halo"])
    assert sizing.model_halo(fresh) == 42 and len(calls) == 2  # same weights: not measured


def test_cpu_keeps_tiles_wide_against_the_overlap(monkeypatch):
    paper = create_model("sa2net-paper", 1, 3)
    monkeypatch.setattr(sizing, "available_bytes", lambda device: 64 << 30)
    choice = sizing.choose(paper, (8192, 8192), torch.device("cpu"), **_args(overlap=128))
    assert choice.tile >= 3 * 128 and choice.batch_size == 1
