"""SA2-Net in plain PyTorch: blocks, named configurations, checkpoints, devices, bundled models."""

from __future__ import annotations

from .aua import AdaptiveUpAttention
from .sa2 import ScaleAwareAttention
from .sa2net import CONFIGS, SA2Net, SA2NetConfig, create_model

__all__ = [
    "CONFIGS",
    "AdaptiveUpAttention",
    "SA2Net",
    "SA2NetConfig",
    "ScaleAwareAttention",
    "create_model",
]
