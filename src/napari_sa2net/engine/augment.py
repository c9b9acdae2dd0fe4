"""Random augmentation of training crops: the settings and the intensity part.

Images are normalized per image before the network sees them (1st -> 0, 99.8th percentile -> 1),
so a dim or a bright acquisition looks the same after normalization except for what the
normalization cannot undo: its noise, how few grey levels it has (a dim 8-bit camera), clipped
tops (saturation), blur (another objective or focus) and a normalization that is a little off
(gain, offset, gamma). The ``"wide"`` preset simulates those, in the order the microscope
makes them: blur (optics), saturation (detector), shot and read noise, quantization (converter),
then the normalization errors. The geometric part (rot90 / flips, rotation, zoom) is done by
:class:`~napari_sa2net.engine.data.CropSampler`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: Names accepted by :meth:`Augmentation.preset` (``TrainConfig.augment``).
PRESETS = ("basic", "noise", "photometric", "focus", "medium", "wide")


@dataclass(frozen=True)
class Augmentation:
    """Random augmentation settings (each applied to each crop independently).

    rot90/flip are always on. With probability ``p_affine`` the crop is sampled through a small
    rotation (``max_rotation`` degrees) and a scale factor from ``scale_range``; image pixels use
    linear interpolation, targets nearest. Intensity jitter: gain (log-uniform in ``gain_range``),
    gamma (log-uniform in ``gamma_range``, on the crop's own range) and an additive offset.
    With their probabilities: Gaussian blur (sigma up to ``max_blur`` px), saturation (values
    above a random level in ``saturation_range`` clipped, then rescaled so the level reads 1),
    an uneven background (haze, vignetting: a tilted plane at a level in ``background_range``,
    tilt up to ``max_tilt`` across the crop, under which the signal keeps only the rest of the
    range), noise (read noise of std log-uniform in ``noise_range`` plus shot noise of the same
    scale times sqrt(signal)) and quantization to 8-64 grey levels per unit of normalized
    intensity.
    """

    p_affine: float = 0.25
    max_rotation: float = 20.0
    scale_range: tuple[float, float] = (1.0, 1.0)
    gain_range: tuple[float, float] = (0.8, 1.25)
    gamma_range: tuple[float, float] = (0.8, 1.25)
    max_offset: float = 0.1
    p_blur: float = 0.0
    max_blur: float = 1.5
    p_saturate: float = 0.0
    saturation_range: tuple[float, float] = (0.5, 0.9)
    p_noise: float = 0.0
    noise_range: tuple[float, float] = (0.01, 0.15)
    p_quantize: float = 0.0
    p_background: float = 0.0
    background_range: tuple[float, float] = (0.1, 0.7)
    max_tilt: float = 0.4

    @classmethod
    def preset(cls, name: str, scale_jitter: float = 0.0) -> Augmentation:
        """``"basic"`` (geometry + mild jitter), ``"noise"`` (basic, and shot + read noise on some
        crops), ``"photometric"`` (basic, and noise or an uneven
        background on some crops: the two faults that cost the basic model most in
        ``examples/robustness.py``; no blur, saturation or quantization, which blur the thin
        gaps between touching nuclei), ``"focus"`` (basic, and a Gaussian blur of 0.5-2 px on a
        quarter of the crops: out-of-focus acquisitions, the largest loss left after ``denoise``
        and ``flatten``), ``"medium"`` (basic, and each acquisition fault on a few
        crops: about half the crops keep none) or ``"wide"`` (stronger jitter, and the faults on
        most crops).

        ``scale_jitter=s`` zooms by a factor in ``[1/(1+s), 1+s]``: a quarter of the crops with
        ``"basic"`` and ``"medium"``, half of them with ``"wide"``.
        """
        scales = (1 / (1 + scale_jitter), 1 + scale_jitter)
        if name == "basic":
            return cls(scale_range=scales)
        if name == "noise":  # basic, and a photon-starved camera on some crops
            return cls(scale_range=scales, p_noise=0.3, noise_range=(0.01, 0.3))
        if name == "photometric":  # basic, and low light / uneven illumination on some crops
            return cls(
                scale_range=scales, p_noise=0.3, p_background=0.2, noise_range=(0.01, 0.3),
            )  # fmt: skip
        if name == "focus":  # basic, and out-of-focus crops
            return cls(scale_range=scales, p_blur=0.25, max_blur=2.0)
        if name == "medium":  # basic's geometry and jitter; each fault on a few crops
            return cls(
                scale_range=scales, p_blur=0.1, p_saturate=0.05, p_noise=0.2, p_quantize=0.05,
                p_background=0.15, noise_range=(0.01, 0.3),
            )  # fmt: skip
        if name == "wide":
            return cls(
                p_affine=0.5, scale_range=scales, gain_range=(0.7, 1.4), gamma_range=(0.7, 1.4),
                max_offset=0.15, p_blur=0.2, p_saturate=0.15, p_noise=0.4, p_quantize=0.15,
                p_background=0.25, noise_range=(0.01, 0.3),
            )  # fmt: skip
        raise ValueError(f"augmentation must be one of {', '.join(PRESETS)}, got {name!r}")


def _uniform_log(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(*np.log(bounds))))


def acquisition_faults(x: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """Blur, saturation, noise and quantization of a normalized ``YXC`` float32 crop (in place)."""
    if aug.p_blur and rng.random() < aug.p_blur:
        sigma = float(rng.uniform(0.5, aug.max_blur))
        for c in range(x.shape[-1]):
            x[..., c] = ndi.gaussian_filter(x[..., c], sigma)
    if aug.p_saturate and rng.random() < aug.p_saturate:
        level = float(rng.uniform(*aug.saturation_range))
        np.minimum(x, level, out=x)
        x *= 1.0 / level
    if aug.p_background and rng.random() < aug.p_background:
        x = uneven_background(x, aug, rng)
    if aug.p_noise and rng.random() < aug.p_noise:
        scale = _uniform_log(rng, aug.noise_range)
        shot = np.sqrt(np.clip(x, 0.0, None)) * rng.standard_normal(x.shape, np.float32)
        x += scale * (shot + rng.standard_normal(x.shape, np.float32))
    if aug.p_quantize and rng.random() < aug.p_quantize:
        levels = float(np.round(_uniform_log(rng, (8.0, 64.0))))
        x *= levels
        np.round(x, out=x)
        x *= 1.0 / levels
    return x


def uneven_background(x: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """``field + (1 - field) * x`` for a tilted plane ``field`` (in place): the background rises
    to the field and the objects' contrast over it shrinks by as much, as under haze or uneven
    illumination that the image's percentile normalization cannot undo."""
    height, width = x.shape[:2]
    angle = float(rng.uniform(0.0, 2.0 * np.pi))
    tilt = float(rng.uniform(0.0, aug.max_tilt))
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None] * (tilt * np.cos(angle))
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :] * (tilt * np.sin(angle))
    field = np.clip(ys + xs + float(rng.uniform(*aug.background_range)), 0.0, 0.95)[..., None]
    x *= 1.0 - field
    x += field
    return x


def intensity_jitter(x: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """Acquisition faults, then gamma, gain and offset of a ``YXC`` float32 crop (in place)."""
    x = acquisition_faults(x, aug, rng)
    # Python floats keep the arithmetic in float32 (NumPy scalars would promote to float64).
    gamma = _uniform_log(rng, aug.gamma_range)
    if gamma != 1.0:
        low, high = float(x.min()), float(x.max())
        if high > low:
            x -= low
            x *= 1.0 / (high - low)
            np.power(x, gamma, out=x)
            x *= high - low
            x += low
    x *= _uniform_log(rng, aug.gain_range)
    x += float(rng.uniform(-aug.max_offset, aug.max_offset))
    return x
