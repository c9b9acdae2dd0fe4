"""SA2-Net: U-Net encoder, scale-aware attention (SA2) skips, adaptive up-attention decoder.

Reimplemented from the description of Fiaz et al., "SA2-Net: Scale-aware Attention Network for
Microscopic Image Segmentation", BMVC 2023 (arXiv:2309.16661), without the modules the reference
code builds but never calls. Every configuration is the same network at a different base width
``C``; ``sa2net-paper`` (``C = 64``) is the published one (19,296,596 parameters for 3 input
channels and 1 class).

Differences from the reference code, all deliberate: the model returns logits (no sigmoid inside),
the auxiliary 1×1 heads run before the bilinear upsampling (same result, far less memory), the
auxiliary maps are returned on request in both train and eval mode, and any input size works
(padded to a multiple of 16, cropped back).

Addition for touching nuclei (not in the paper): a model built with ``centre=True`` has one more
output plane, the *centre map*: for each object the distance of a pixel to the object's edge
divided by the largest such distance in the object (1 at its centre, falling to 0 at the edge
and outside). Where two nuclei touch, the map dips to 0 between their centres even when the
boundary class is faint, so its peaks seed one object per nucleus (:mod:`..inference.maps`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..normalization import Normalization
from .aua import AdaptiveUpAttention
from .blocks import UNetEncoder, conv1x1, conv3x3, resize_bilinear
from .sa2 import ScaleAwareAttention

#: Input height and width are padded to a multiple of this (the encoder's deepest stride).
SIZE_MULTIPLE = 16


@dataclass(frozen=True)
class SA2NetConfig:
    """A named SA2-Net configuration; every width follows from the base width ``C``.

    Parameters
    ----------
    name : str
        Configuration name, stored in checkpoints.
    width : int
        Base width ``C``: encoder widths ``C, 2C, 4C, 8C, 8C``; SA2 works on ``C`` channels.
    description : str
        One line for listings (``sa2net info``).
    """

    name: str
    width: int
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be a positive integer, got {self.width}")

    @property
    def encoder_widths(self) -> tuple[int, int, int, int, int]:
        c = self.width
        return (c, 2 * c, 4 * c, 8 * c, 8 * c)


CONFIGS: dict[str, SA2NetConfig] = {
    cfg.name: cfg
    for cfg in (
        SA2NetConfig("sa2net-paper", 64, "published width, 19.3 M parameters, for GPUs"),
        SA2NetConfig("sa2net-base", 32, "4× cheaper than the paper width, 4.9 M parameters"),
        SA2NetConfig("sa2net-small", 16, "CPU-friendly, 1.2 M parameters"),
        SA2NetConfig("sa2net-tiny", 8, "for tests and smoke runs, 0.3 M parameters"),
    )
}


def pad_to_multiple(x: torch.Tensor, multiple: int = SIZE_MULTIPLE) -> tuple[torch.Tensor, tuple]:
    """Pad the last two axes of ``NCHW`` ``x`` (centred) up to a multiple of ``multiple``.

    Reflect padding where the image is large enough, replicate padding otherwise (reflection
    needs a pad smaller than the side, e.g. impossible for a 1-pixel side). Returns the padded
    tensor and the ``(top, left, height, width)`` window that crops it back.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    top, left = pad_h // 2, pad_w // 2
    window = (top, left, height, width)
    if pad_h == 0 and pad_w == 0:
        return x, window
    pads = (left, pad_w - left, top, pad_h - top)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, pads, mode=mode), window


class SA2Net(nn.Module):
    """SA2-Net segmentation network; maps ``N×in_channels×H×W`` images to class logits.

    Parameters
    ----------
    config : SA2NetConfig
        Widths of the network.
    in_channels : int
        Channels of the input image (1 for fluorescence, 3 for RGB).
    num_classes : int
        Classes: 1 for the binary (paper) mode, 3 for instance mode (background / interior /
        boundary).
    centre : bool
        Add the centre-map output plane after the classes (instance mode only).
    normalization : Normalization, optional
        Input normalization the model is (to be) trained with; stored in checkpoints.
    metadata : dict, optional
        Provenance (training data, epochs, metrics, package version); stored in checkpoints.
    """

    def __init__(
        self,
        config: SA2NetConfig,
        in_channels: int = 1,
        num_classes: int = 3,
        normalization: Normalization | None = None,
        metadata: dict[str, Any] | None = None,
        centre: bool = False,
    ) -> None:
        super().__init__()
        for label, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if centre and num_classes != 3:
            raise ValueError(
                f"a centre map needs the 3-class instance mode, got num_classes={num_classes}; "
                "use num_classes=3 or centre=False"
            )
        self.config = config
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.centre = bool(centre)
        self.normalization = normalization if normalization is not None else Normalization()
        self.metadata: dict[str, Any] = dict(metadata or {})
        #: File the weights were loaded from (set by :func:`load_model`), for provenance.
        self.checkpoint_path: Path | None = None
        self._encoder_frozen = False

        c = config.width
        e1, e2, e3, e4, e5 = config.encoder_widths
        self.encoder = UNetEncoder(in_channels, config.encoder_widths)
        # E1 already has C channels and enters SA2 unchanged; E5 bypasses SA2.
        self.side_projections = nn.ModuleList(conv3x3(w, c) for w in (e2, e3, e4))
        self.bottleneck_projection = conv3x3(e5, e5)
        self.sa2 = ScaleAwareAttention(c, (e1, e2, e3, e4))
        self.up4 = AdaptiveUpAttention(e4, e3)
        self.up3 = AdaptiveUpAttention(e3, e2)
        self.up2 = AdaptiveUpAttention(e2, e1)
        self.up1 = AdaptiveUpAttention(e1, e1)
        outputs = self.num_outputs
        self.head = conv1x1(e1, outputs)
        # Auxiliary deep-supervision heads on d2, d3, d4 (in that order).
        self.aux_heads = nn.ModuleList(conv1x1(w, outputs) for w in (e1, e2, e3))

    @property
    def num_outputs(self) -> int:
        """Output planes: the classes, then the centre map if the model has one."""
        return self.num_classes + int(self.centre)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities of this model's logits (:func:`to_probabilities`)."""
        return to_probabilities(logits, self.centre)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise ValueError(
                f"SA2Net expects an N×C×H×W tensor, got {shape}; add the batch axis with "
                "x[None] and put channels first (C×H×W)"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"this model takes {self.in_channels} input channel(s), got {x.shape[1]} "
                f"(shape {tuple(x.shape)}); pick the matching channel(s) or use a model "
                f"created with in_channels={x.shape[1]}"
            )
        if x.shape[0] == 0 or x.shape[-2] == 0 or x.shape[-1] == 0:
            raise ValueError(f"got an empty tensor {tuple(x.shape)}; pass at least 1×1 pixel")
        if not x.is_floating_point():
            raise ValueError(
                f"SA2Net expects a floating-point tensor, got {x.dtype}; normalize the image "
                "first (model.normalization) and convert with x.float()"
            )

    def _decode(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Features of a padded input: returns ``(d1, d2, d3, d4)``."""
        e1, e2, e3, e4, e5 = self.encoder(x)
        sides = [e1] + [proj(e) for proj, e in zip(self.side_projections, (e2, e3, e4))]
        o1, o2, o3, o4 = self.sa2(sides)
        d4 = self.up4(self.bottleneck_projection(e5), o4)
        d3 = self.up3(d4, o3)
        d2 = self.up2(d3, o2)
        d1 = self.up1(d2, o1)
        return d1, d2, d3, d4

    def forward(
        self, x: torch.Tensor, aux: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits ``N×num_outputs×H×W`` for an ``N×in_channels×H×W`` input of any size.

        With ``aux=True`` returns ``(main, aux_d2, aux_d3, aux_d4)``, all full-resolution
        logits of the same shape; the auxiliary maps serve deep supervision in training.
        """
        self._check_input(x)
        padded, (top, left, height, width) = pad_to_multiple(x)
        d1, d2, d3, d4 = self._decode(padded)
        size = tuple(padded.shape[-2:])
        outputs = [self.head(d1)]
        if aux:
            outputs += [resize_bilinear(h(d), size) for h, d in zip(self.aux_heads, (d2, d3, d4))]
        outputs = [o[..., top : top + height, left : left + width] for o in outputs]
        return tuple(outputs) if aux else outputs[0]

    def freeze_encoder(self, freeze: bool = True) -> SA2Net:
        """Freeze (or unfreeze) the conv encoder's weights and BatchNorm statistics.

        Frozen BatchNorm layers stay in eval mode after :meth:`train`, so finetuning on a few
        small crops does not overwrite the running statistics learnt on the training set.
        """
        self._encoder_frozen = bool(freeze)
        for param in self.encoder.parameters():
            param.requires_grad_(not freeze)
        return self.train(self.training)

    @property
    def encoder_frozen(self) -> bool:
        return self._encoder_frozen

    def train(self, mode: bool = True) -> SA2Net:
        super().train(mode)
        if self._encoder_frozen:
            self.encoder.eval()
        return self


def to_probabilities(logits: torch.Tensor, centre: bool = False) -> torch.Tensor:
    """``N×K×H×W`` logits to probabilities: sigmoid for one class, else softmax over the
    classes; with ``centre`` the last plane is the centre map (its own sigmoid)."""
    if centre:
        return torch.cat([torch.softmax(logits[:, :-1], 1), torch.sigmoid(logits[:, -1:])], 1)
    if logits.shape[1] == 1:
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=1)


def create_model(
    name: str = "sa2net-small", in_channels: int = 1, num_classes: int = 3, centre: bool = False
) -> SA2Net:
    """Build the network of a named configuration with random weights.

    Parameters
    ----------
    name : str
        One of :data:`CONFIGS` (``sa2net-paper``, ``sa2net-base``, ``sa2net-small``,
        ``sa2net-tiny``).
    in_channels : int
        Input channels (1 fluorescence, 3 RGB).
    num_classes : int
        1 for binary (paper) mode, 3 for instance mode.
    centre : bool
        Add the centre-map output plane (instance mode; see :class:`SA2Net`).
    """
    if name not in CONFIGS:
        raise ValueError(
            f"unknown model configuration {name!r}; choose one of {', '.join(CONFIGS)}"
        )
    return SA2Net(CONFIGS[name], in_channels=in_channels, num_classes=num_classes, centre=centre)
