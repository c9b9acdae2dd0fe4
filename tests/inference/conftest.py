"""Fixtures for inference tests: an identity "model" whose probabilities are its input."""

from __future__ import annotations

import numpy as np
import pytest
import torch


class Identity(torch.nn.Module):
    """Logits = input; with ``activation="none"`` the predicted maps are the input channels."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.in_channels = self.num_classes = channels
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x.clone()


@pytest.fixture
def identity():
    return Identity


def _same_objects(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label images hold the same objects (ids may differ)."""
    if ((a > 0) != (b > 0)).any():
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


@pytest.fixture
def same_objects():
    return _same_objects


SAMPLE = "src/napari_sa2net/_sample_data/nuclei_fluo.tif"
#: Small tiles and chunks: the stack tests cross chunk edges on 128² planes.
FAST = {"device": "cpu", "tile": 64, "overlap": 32, "chunk": 64}


def _real_planes(n: int = 3, size: int = 128) -> np.ndarray:
    """``n`` planes of real nuclei: crops of the bundled sample, shifted like a focus series."""
    import tifffile

    image = tifffile.imread(SAMPLE)
    return np.stack([image[6 * z : 6 * z + size, 5 * z : 5 * z + size] for z in range(n)])


def _zero_cost(stats):
    from napari_sa2net.inference.predictor import ZeroCostPredictor

    return ZeroCostPredictor(3, 2, stats)


@pytest.fixture(scope="session")
def tiny_net():
    """An untrained sa2net-tiny: sizes the tiles; the zero-cost predictor does the work."""
    from napari_sa2net.model import create_model

    torch.manual_seed(0)
    return create_model("sa2net-tiny", in_channels=1, num_classes=3).eval()


@pytest.fixture
def stack_run(tiny_net):
    """``stack_run(image, **settings)``: segment_job with the zero-cost predictor, run out."""
    from napari_sa2net._progress import run_job
    from napari_sa2net.inference import segment_job

    def run(image, events=None, **kwargs):
        job = segment_job(image, model=tiny_net, predictor=_zero_cost, **{**FAST, **kwargs})
        return run_job(job, None if events is None else events.append)

    return run


@pytest.fixture
def real_planes():
    return _real_planes
