"""Fixtures for inference tests: an identity "model" whose probabilities are its input."""

from __future__ import annotations

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
