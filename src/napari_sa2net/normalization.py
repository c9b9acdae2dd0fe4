"""Percentile intensity normalization, computed once per image and stored with the model.

The same statistics are used on training crops and on every tile of a whole slide, so that tiles
never get their own normalization (the main cause of seams in comparable tools).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Largest number of pixels a statistic is computed from; bigger images are subsampled on a grid.
MAX_STAT_PIXELS = 4_000_000


def sample_step(shape: tuple[int, int]) -> int:
    """Stride of the statistics' sample grid: at most :data:`MAX_STAT_PIXELS` pixels."""
    return max(1, int(np.ceil(np.sqrt(shape[0] * shape[1] / MAX_STAT_PIXELS))))


@dataclass(frozen=True)
class Normalization:
    """Per-channel percentile normalization: ``(x - p_low) / (p_high - p_low)``.

    The output is not clipped, so bright objects keep their contrast above 1.
    """

    low_percentile: float = 1.0
    high_percentile: float = 99.8

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ValueError(
                f"normalization percentiles must satisfy 0 <= low < high <= 100, got "
                f"low={self.low_percentile}, high={self.high_percentile}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "percentile", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalization:
        fields = {k: v for k, v in data.items() if k != "kind"}
        return cls(**fields)

    def statistics(self, image: Any) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel ``(low, high)`` of a channel-last ``YXC`` numpy or dask array.

        Images larger than :data:`MAX_STAT_PIXELS` are subsampled on a regular grid of
        :func:`sample_step` (rows and columns that are multiples of it), which reads only a
        strided subset of a lazy array. NaN and inf are ignored.
        """
        if image.ndim != 3:
            raise ValueError(f"expected a YXC image, got shape {image.shape}")
        step = sample_step(image.shape[:2])
        sample = image[::step, ::step]
        sample = np.asarray(sample.compute() if hasattr(sample, "compute") else sample)
        return self.from_sample(sample.reshape(-1, sample.shape[-1]))

    def from_sample(self, sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel ``(low, high)`` percentiles of an ``N×C`` sample of pixels."""
        flat = np.asarray(sample).astype(np.float64)
        low = np.empty(flat.shape[1], np.float64)
        high = np.empty(flat.shape[1], np.float64)
        for c in range(flat.shape[1]):
            values = flat[:, c][np.isfinite(flat[:, c])]
            if values.size == 0:
                raise ValueError("the image holds no finite values (all NaN or inf)")
            low[c], high[c] = np.percentile(values, [self.low_percentile, self.high_percentile])
        return low, high

    @staticmethod
    def span(low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Per-channel ``high - low`` (float32), 1 where a channel is constant."""
        span = np.asarray(high, np.float32) - np.asarray(low, np.float32)
        return np.where(span > 0, span, 1.0).astype(np.float32)

    @staticmethod
    def apply(image: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Map a ``...C`` array to float32 with precomputed statistics; NaN/inf become 0.

        A constant channel (``high == low``) maps to zeros instead of dividing by zero.
        """
        low = np.asarray(low, np.float32)
        out = (np.asarray(image, np.float32) - low) / Normalization.span(low, high)
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0, copy=False)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Normalize one in-memory ``YXC`` image with its own statistics (training crops)."""
        low, high = self.statistics(image)
        return self.apply(image, low, high)
