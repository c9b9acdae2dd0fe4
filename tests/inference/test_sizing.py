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


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("overlap", [96, 128, 144])
def test_automatic_tiles_start_on_the_edges_of_automatic_chunks(
    small, monkeypatch, device, overlap
):
    from napari_sa2net.inference.scratch import output_chunk

    monkeypatch.setattr(sizing, "available_bytes", lambda device: 40 << 30)
    choice = sizing.choose(small, (8192, 8192), torch.device(device), overlap=overlap)
    chunk = sizing.default_chunk(device, choice.tile, choice.overlap)
    assert chunk % (choice.tile - choice.overlap) == 0 and chunk >= choice.tile
    assert output_chunk(chunk) >= 512  # the output store's chunks stay large


def test_the_bundled_model_on_a_cpu_takes_chunks_of_3_strides(monkeypatch):
    from napari_sa2net.model import load_model

    net = load_model("nuclei-fluo")  # the bundled model: width 16, halo 48 (+ 3 px denoising)
    monkeypatch.setattr(sizing, "available_bytes", lambda device: 16 << 30)
    choice = sizing.choose(net, (4096, 4096), torch.device("cpu"), extra_halo=3)
    assert (choice.tile, choice.overlap, choice.batch_size) == (512, 144, 1)
    assert sizing.default_chunk("cpu", 512, 144) == 3 * 368


@pytest.mark.parametrize(
    ("nominal", "stride", "expected"),
    [
        (1024, 512, 1024),  # aligned already
        (1024, 368, 1104),
        (1024, 384, 1152),
        (1536, 1408, 1536),  # no multiple up to 1.5 × nominal: kept as it was
        (1536, 1616, 1536),  # 1616 = 16 × 101 would be stored in chunks of 16 px
        (4096, 880, 4400),  # stored in chunks of 880 px
    ],
)
def test_aligned_chunk(nominal, stride, expected):
    assert sizing.aligned_chunk(nominal, stride) == expected
