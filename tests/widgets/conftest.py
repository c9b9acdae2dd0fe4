"""Fixtures for the widget tests: a tiny untrained checkpoint, small real images."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """An untrained ``sa2net-tiny`` instance-mode checkpoint (1 input channel) on disk."""
    torch = pytest.importorskip("torch")
    from napari_sa2net.model import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("sa2net-tiny", in_channels=1, num_classes=3)
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    save_checkpoint(model, path)
    return path


@pytest.fixture
def nuclei_crop():
    """A 128×128 crop of the shipped real nuclei sample (``YX`` uint16)."""
    from napari_sa2net._sample_data import nuclei_fluorescence

    [(data, _, _)] = nuclei_fluorescence()
    return np.ascontiguousarray(data[192:320, 192:320])


@pytest.fixture(autouse=True)
def _forget_session_models():
    from napari_sa2net._widgets._session import SESSION_MODELS

    SESSION_MODELS.clear()
    yield
    SESSION_MODELS.clear()
