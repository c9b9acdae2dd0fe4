"""Checkpoint files, bundled-model lookup and device selection."""

from __future__ import annotations

import pytest
import torch

from napari_sa2net.model import (
    DEFAULT_MODEL,
    available_devices,
    bundled,
    create_model,
    list_bundled_models,
    load_model,
    model_hash,
    resolve_device,
    save_checkpoint,
)


@pytest.fixture
def bundled_dir(tmp_path, monkeypatch):
    folder = tmp_path / "bundled"
    monkeypatch.setattr(bundled, "BUNDLED_DIR", folder)
    return folder


def test_bundled_models_are_found_by_name(bundled_dir) -> None:
    assert list_bundled_models() == []  # missing folder
    bundled_dir.mkdir()
    assert list_bundled_models() == []  # empty folder
    save_checkpoint(create_model("sa2net-tiny"), bundled_dir / f"{DEFAULT_MODEL}.pt")
    (bundled_dir / "notes.md").write_text("not a model")
    assert list_bundled_models() == [DEFAULT_MODEL]
    model = load_model(DEFAULT_MODEL)
    assert model.config.name == "sa2net-tiny"
    assert model.checkpoint_path == bundled_dir / f"{DEFAULT_MODEL}.pt"


def test_unknown_name_lists_what_exists(bundled_dir) -> None:
    bundled_dir.mkdir()
    save_checkpoint(create_model("sa2net-tiny"), bundled_dir / "cells.pt")
    with pytest.raises(ValueError, match="bundled models: cells"):
        load_model("nuclei")
    with pytest.raises(ValueError, match="does not exist"):
        load_model(bundled_dir / "missing.pt")


def test_files_that_are_not_checkpoints(tmp_path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable napari-sa2net checkpoint"):
        load_model(garbage)
    bare = tmp_path / "bare.pt"
    torch.save(create_model("sa2net-tiny").state_dict(), bare)
    with pytest.raises(ValueError, match="load_state_dict_checked"):
        load_model(bare)


def test_model_hash_identifies_the_file(tmp_path) -> None:
    torch.manual_seed(0)
    first = save_checkpoint(create_model("sa2net-tiny"), tmp_path / "a.pt")
    second = save_checkpoint(create_model("sa2net-tiny"), tmp_path / "b.pt")
    assert len(model_hash(first)) == 12
    assert model_hash(first) == model_hash(first)
    assert model_hash(first) != model_hash(second)


def test_devices() -> None:
    names = [name for name, _ in available_devices()]
    assert names[0] == "cpu"
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert str(resolve_device("auto")).split(":")[0] in {n.split(":")[0] for n in names}
    with pytest.raises(ValueError, match="available: cpu"):
        resolve_device("cuda:99")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu-please")


@pytest.mark.gpu
def test_load_model_onto_cuda(tmp_path) -> None:
    path = save_checkpoint(create_model("sa2net-tiny"), tmp_path / "m.pt")
    model = load_model(path, device="cuda")
    assert next(model.parameters()).is_cuda
    out = model(torch.randn(1, 1, 40, 40, device="cuda"))
    assert out.shape == (1, 3, 40, 40)


def test_a_cpu_model_runs_channels_last_and_saves_contiguous_weights(tmp_path) -> None:
    import copy

    from napari_sa2net.model import create_model, save_checkpoint, use_fast_layout

    torch.manual_seed(0)
    plain = create_model("sa2net-tiny", 1, 3).eval()
    fast = use_fast_layout(copy.deepcopy(plain), "cpu")
    convs = [p for p in fast.parameters() if p.ndim == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert not all(p.is_contiguous() for p in convs)
    x = torch.rand(1, 1, 96, 80)
    with torch.inference_mode():
        np_fast, np_plain = fast(x), plain(x)
    assert np_fast.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(np_fast, np_plain, rtol=1e-4, atol=1e-5)
    # The file does not depend on the layout the weights were used in.
    a, b = save_checkpoint(plain, tmp_path / "a.pt"), save_checkpoint(fast, tmp_path / "b.pt")
    saved = torch.load(b, weights_only=True)["state_dict"]
    assert all(t.is_contiguous() for t in saved.values())
    assert a.read_bytes() == b.read_bytes()
