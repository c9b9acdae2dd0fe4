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
