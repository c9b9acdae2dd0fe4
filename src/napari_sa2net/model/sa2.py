"""The SA2 (scale-aware attention) module that fuses the four shallow encoder scales.

All fusion happens on the grid of the third scale (stride 4 of the input): every scale is resized
there, refined by its own :class:`LocalScaleAttention`, weighted by one shared
:class:`GlobalScaleAttention`, then resized back, added to its input and passed through its own
:class:`ScaleReturn` block, which also maps it to the stage width of the decoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import LayerNorm2d, conv1x1, conv3x3, depthwise, resize_bilinear


class LocalScaleAttention(nn.Module):
    """Gated dual-kernel feed-forward block (3×3 and 5×5 depthwise) on one scale; no residual.

    ``N×C×H×W`` → ``N×C×H×W``. The expansion produces ``2 * hidden`` channels; each half of the
    3×3 branch is gated by the sigmoid of the matching half of the 5×5 branch.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.expand = conv1x1(channels, 2 * hidden)
        self.local3 = depthwise(2 * hidden, 3)
        self.local5 = depthwise(2 * hidden, 5)
        self.project = conv1x1(2 * hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.expand(x)
        small = F.relu(self.local3(x))
        large = F.relu(self.local5(x))
        a_small, b_small = small.chunk(2, dim=1)
        a_large, b_large = large.chunk(2, dim=1)
        gated = torch.cat(
            [a_small * torch.sigmoid(a_large), b_small * torch.sigmoid(b_large)], dim=1
        )
        return self.project(gated)


class GlobalScaleAttention(nn.Module):
    """Shared weighting of all scales: one spatial weight map per scale and a common query.

    Takes ``num_scales`` tensors ``N×C×H×W`` on one grid and returns as many, each
    ``L_i * G_i * Q`` where ``G_i`` (``N×1×H×W``, GELU-activated, unnormalized) and ``Q``
    (``N×C×H×W``) come from a 3×3 conv over the concatenated scales.
    """

    def __init__(self, channels: int, num_scales: int) -> None:
        super().__init__()
        self.num_scales = num_scales
        self.channels = channels
        self.norm = nn.BatchNorm2d(num_scales * channels)
        self.mix = conv3x3(num_scales * channels, channels + num_scales)
        self.refine_query = depthwise(channels, 5)

    def forward(self, scales: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        mixed = F.gelu(self.mix(self.norm(torch.cat(list(scales), dim=1))))
        query, weights = mixed.split([self.channels, self.num_scales], dim=1)
        query = F.gelu(self.refine_query(query))
        return [s * weights[:, i : i + 1] * query for i, s in enumerate(scales)]


#: CPU inference computes a :class:`ConvMLPBlock`'s hidden layer in bands of rows holding at
#: most this many bytes. Whole, the full-resolution hidden layer of a 512² tile is 64 MB (4 ×
#: the width of 16, float32): glibc serves blocks that large to a thread other than the main
#: one (where the engine runs) by mapping fresh pages and unmapping them when freed, so every
#: forward pass faulted in ~100 MB anew (27,000 page faults, 0.44-0.56 s a tile instead of
#: 0.36 s). The MLP is pointwise: bands give the same numbers to float rounding.
MLP_BAND_BYTES = 8 << 20


class ConvMLPBlock(nn.Module):
    """ConvNeXt-style residual MLP: LayerNorm → depthwise 3×3 (residual) → 1×1 MLP, + input.

    ``N×C×H×W`` → ``N×C×H×W``; the outer residual adds the un-normalized input. Without
    gradients on the CPU, the 1×1 MLP runs in bands of rows (:data:`MLP_BAND_BYTES`).
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(channels)
        self.local = depthwise(channels, 3)
        self.expand = conv1x1(channels, hidden)
        self.project = conv1x1(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm(x)
        n = n + F.gelu(self.local(n))
        return x + self._mlp(n)

    def _mlp(self, n: torch.Tensor) -> torch.Tensor:
        row_bytes = n.shape[0] * self.expand.out_channels * n.shape[3] * n.element_size()
        rows = max(1, MLP_BAND_BYTES // max(1, row_bytes))
        if rows >= n.shape[2] or n.device.type != "cpu" or torch.is_grad_enabled():
            return self.project(F.gelu(self.expand(n)))
        out = n.new_empty((n.shape[0], self.project.out_channels, *n.shape[2:]))
        for band, into in zip(n.split(rows, dim=2), out.split(rows, dim=2), strict=True):
            into.copy_(self.project(F.gelu(self.expand(band))))
        return out


class ScaleReturn(nn.Module):
    """Per-scale exit of SA2: :class:`ConvMLPBlock`, then a 3×3 conv to the stage width."""

    def __init__(self, channels: int, out_channels: int, mlp_hidden: int) -> None:
        super().__init__()
        self.mlp = ConvMLPBlock(channels, mlp_hidden)
        self.project = conv3x3(channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.mlp(x))


class ScaleAwareAttention(nn.Module):
    """SA2: fuse four ``C``-channel scales on the grid of scale ``fusion_index``.

    Parameters
    ----------
    channels : int
        Channels ``C`` of every input scale.
    out_channels : sequence of int
        Output channels per scale (the decoder stage widths), e.g. ``(C, 2C, 4C, 8C)``.
    fusion_index : int
        Index of the scale whose grid hosts the fusion (2: stride 4 for strides 1, 2, 4, 8).

    ``forward`` takes the list of scales ``N×C×H_i×W_i`` and returns
    ``N×out_channels[i]×H_i×W_i`` for each.
    """

    def __init__(self, channels: int, out_channels: Sequence[int], fusion_index: int = 2) -> None:
        super().__init__()
        num_scales = len(out_channels)
        self.fusion_index = fusion_index
        self.local_attention = nn.ModuleList(
            LocalScaleAttention(channels, 2 * channels) for _ in range(num_scales)
        )
        self.global_attention = GlobalScaleAttention(channels, num_scales)
        self.returns = nn.ModuleList(
            ScaleReturn(channels, out, 4 * channels) for out in out_channels
        )

    def forward(self, scales: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        grid = tuple(scales[self.fusion_index].shape[-2:])
        local = [lsa(resize_bilinear(s, grid)) for lsa, s in zip(self.local_attention, scales)]
        weighted = self.global_attention(local)
        return [
            exit_(s + resize_bilinear(z, tuple(s.shape[-2:])))
            for exit_, s, z in zip(self.returns, scales, weighted)
        ]
