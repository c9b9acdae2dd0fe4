"""The AuA (adaptive up-attention) decoder block of SA2-Net.

The deeper feature only *guides* the skip feature through a one-channel spatial attention map; it
is never concatenated with or added to the output. This is the published design and is kept.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import ConvBNReLU, LayerNorm2d, conv1x1, conv3x3, depthwise, upsample_nearest2x


class AttentionGate(nn.Module):
    """One-channel spatial attention from guidance and skip: GELU → 1×1 to 1 → BN → sigmoid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = conv1x1(2 * channels, 1)
        self.norm = nn.BatchNorm2d(1)

    def forward(self, guide: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        mixed = nn.functional.gelu(torch.cat([guide, skip], dim=1))
        return torch.sigmoid(self.norm(self.score(mixed)))


class AdaptiveUpAttention(nn.Module):
    """Decoder level: attention-refined skip feature, then two :class:`ConvBNReLU` blocks.

    Parameters
    ----------
    channels : int
        Channels ``F`` of both the deeper feature and the skip feature.
    out_channels : int
        Output channels of the level.

    ``forward(deep, skip)`` takes ``deep`` ``N×F×h×w`` and ``skip`` ``N×F×2h×2w`` and returns
    ``N×out_channels×2h×2w``.
    """

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.guide = nn.Sequential(
            LayerNorm2d(channels),
            conv1x1(channels, channels),
            nn.GELU(),
            depthwise(channels, 11),
        )
        self.skip_local = depthwise(channels, 5)
        self.gate = AttentionGate(channels)
        self.refine = conv3x3(channels, channels)
        self.reduce = nn.Sequential(
            ConvBNReLU(channels, out_channels), ConvBNReLU(out_channels, out_channels)
        )

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        guide = self.guide(upsample_nearest2x(deep))
        local = self.skip_local(skip)
        alpha = self.gate(guide, local)
        return self.reduce(self.refine(alpha * local) + skip)
