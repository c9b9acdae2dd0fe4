"""Sample images for File > Open Sample: a fluorescence nuclei crop and an H&E crop.

Both are real images shipped in the package (``_sample_data/``, licenses beside them), so the
samples work offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SAMPLE_DIR = Path(__file__).parent / "_sample_data"


def _read(name: str) -> Any:
    import tifffile

    return tifffile.imread(SAMPLE_DIR / name)


def nuclei_fluorescence() -> list[tuple[Any, dict[str, Any], str]]:
    """RPE-1 nuclei, widefield fluorescence: ``YX`` uint16, 512 x 512 (MIT, mnfinder)."""
    data = _read("nuclei_fluo.tif")
    meta = {"name": "nuclei (fluorescence)", "colormap": "gray", "blending": "additive"}
    return [(data, meta, "image")]


def he_region() -> list[tuple[Any, dict[str, Any], str]]:
    """An H&E region of the OpenSlide CMU-1 slide: ``YXC`` RGB uint8, 640 x 640, 0.499 µm/px."""
    data = _read("he_region.tif")
    meta = {"name": "H&E region", "rgb": True, "scale": (0.499, 0.499), "units": "um"}
    return [(data, meta, "image")]
