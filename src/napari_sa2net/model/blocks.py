"""Small building blocks shared by the SA2-Net encoder, SA2 module and decoder.

Every block has a straight-line ``forward``; behaviour comes from constructor arguments. All
tensors are ``NCHW``. Interpolation settings are explicit so that the model matches the published
network: bilinear resizing with ``align_corners=False`` and no antialiasing, nearest ×2 upsampling.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn


def resize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize an ``NCHW`` tensor to ``size`` (H, W); a no-op when already that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)


def upsample_nearest2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour ×2 upsampling of an ``NCHW`` tensor."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """3×3 convolution with bias and "same" padding."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=True)


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """1×1 convolution with bias."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=True)


def depthwise(channels: int, kernel_size: int) -> nn.Conv2d:
    """Depthwise convolution with bias and "same" padding (odd ``kernel_size``)."""
    return nn.Conv2d(
        channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=True
    )


class ConvBNReLU(nn.Sequential):
    """3×3 convolution (with bias) → BatchNorm → ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            conv3x3(in_channels, out_channels),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DownStage(nn.Sequential):
    """2×2 max-pool (stride 2) followed by two :class:`ConvBNReLU` blocks."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.MaxPool2d(kernel_size=2, stride=2),
            ConvBNReLU(in_channels, out_channels),
            ConvBNReLU(out_channels, out_channels),
        )


class LayerNorm2d(nn.Module):
    """Channels-first LayerNorm: normalizes over C at every pixel of an ``NCHW`` tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One fused kernel over the channel axis; the permuted result keeps NHWC strides,
        # which is faster (forward and backward) than normalizing with elementwise ops.
        channels_last = x.permute(0, 2, 3, 1)
        out = F.layer_norm(channels_last, (x.shape[1],), self.weight, self.bias, self.eps)
        return out.permute(0, 3, 1, 2)


class UNetEncoder(nn.Module):
    """Plain U-Net conv encoder: a one-conv stem, then four :class:`DownStage` blocks.

    Parameters
    ----------
    in_channels : int
        Channels of the input image.
    widths : tuple of int
        Output channels of the stem and the four stages, e.g. ``(64, 128, 256, 512, 512)``.

    ``forward`` maps ``N×in×H×W`` to five features at strides 1, 2, 4, 8, 16.
    """

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int]) -> None:
        super().__init__()
        self.stem = ConvBNReLU(in_channels, widths[0])
        self.stages = nn.ModuleList(DownStage(a, b) for a, b in itertools.pairwise(widths))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [self.stem(x)]
        for stage in self.stages:
            features.append(stage(features[-1]))
        return features
