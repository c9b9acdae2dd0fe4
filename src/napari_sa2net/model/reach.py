"""How far an output pixel of SA2-Net looks into the input: halo sizes for tiled inference.

Two figures, both in input pixels, measured from the centre output pixel:

- the *receptive-field radius* (:data:`RECEPTIVE_FIELD_RADIUS`): beyond it the input has no
  influence at all, so a halo this wide makes tiled output equal whole-image output. It depends
  only on the layer structure (kernel sizes, strides), not on the width ``C`` or the weights.
  It was measured as the largest Chebyshev distance at which ``d out[centre] / d input`` is
  non-zero (640×640 noise input, eval mode, widths 8 and 16 agree) and matches the hand count
  (encoder 3×3 convs and pools to stride 16, the 3×3 bottleneck projection, then the decoder's
  11×11 depthwise guidance and 3×3 convs at strides 8, 4, 2, 1). ``tests/model`` re-measures it.
- the *effective reach* (:func:`measure_reach`): the radius holding a given fraction of the total
  gradient magnitude for the model's own weights. It is much smaller than the receptive field
  and grows with training (``sa2net-tiny`` on nuclei-fluo crops: 10 px at initialization, 18 px
  after 100 Adam steps, 41 px after 300, for 99.9 % of the gradient), so it is measured on the
  model that will be used.
"""

from __future__ import annotations

import math

import torch

from .sa2net import SIZE_MULTIPLE, SA2Net

#: Radius (pixels) beyond which the input cannot change an output pixel, for every configuration.
RECEPTIVE_FIELD_RADIUS = 205

#: Smallest halo :func:`suggested_halo` returns (pixels).
MIN_HALO = 32


def centre_gradient(model: SA2Net, size: int) -> torch.Tensor:
    """``|d logit_0[centre] / d input|`` summed over input channels, a ``size×size`` map.

    Uses a seeded standard-normal input on the model's device, with the model in eval mode for
    the measurement (its mode is restored afterwards).
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, model.in_channels, size, size, generator=generator).to(device)
    x.requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        centre = size // 2
        model(x)[0, 0, centre, centre].backward()
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    return x.grad[0].abs().sum(dim=0).cpu()


def _chebyshev_distance(size: int) -> torch.Tensor:
    coords = torch.arange(size) - size // 2
    return torch.maximum(coords.abs()[:, None], coords.abs()[None, :])


def measure_reach(model: SA2Net, fraction: float = 0.999, size: int | None = None) -> int:
    """Radius (pixels) around an output pixel that holds ``fraction`` of its input gradient.

    Costs one forward and backward pass of a ``size×size`` image (default: just larger than the
    receptive field, 448×448): about a second for ``sa2net-tiny`` on one CPU core, tens of
    seconds for ``sa2net-paper`` on a CPU, negligible on a GPU.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    if size is None:
        size = math.ceil((2 * RECEPTIVE_FIELD_RADIUS + 1) / SIZE_MULTIPLE) * SIZE_MULTIPLE
    grad = centre_gradient(model, size)
    distance = _chebyshev_distance(size)
    mass = torch.bincount(distance.flatten(), weights=grad.flatten().double())
    cumulative = torch.cumsum(mass, 0) / mass.sum()
    return int(torch.searchsorted(cumulative, torch.tensor(fraction, dtype=cumulative.dtype)))


def suggested_halo(model: SA2Net, fraction: float = 0.999) -> int:
    """Halo (pixels per side) for tiled inference with ``model``.

    The measured effective reach (:func:`measure_reach`) rounded up to a multiple of 16, at least
    :data:`MIN_HALO` and at most the receptive-field radius rounded up. Tiles that overlap by
    this much on each side differ from whole-image inference only by a tiny fraction of the
    output's input sensitivity; pass :data:`RECEPTIVE_FIELD_RADIUS` to the tiler instead for
    outputs identical to whole-image inference.
    """
    reach = measure_reach(model, fraction)
    upper = math.ceil(RECEPTIVE_FIELD_RADIUS / SIZE_MULTIPLE) * SIZE_MULTIPLE
    halo = math.ceil(max(reach, 1) / SIZE_MULTIPLE) * SIZE_MULTIPLE
    return int(min(max(halo, MIN_HALO), upper))
