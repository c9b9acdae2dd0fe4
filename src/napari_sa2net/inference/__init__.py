"""Tiled inference: plan → predict → merge, post-processing, the dask pipeline, batch folders.

Names are exported lazily (module ``__getattr__``) so ``import napari_sa2net.inference`` loads
neither torch nor dask; the defining submodule is imported on first use of a name.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> submodule that defines it.
_EXPORTS: dict[str, str] = {
    "segment_job": "api",
    "segment": "api",
    "SegmentResult": "api",
    "TilePlan": "tiling",
    "Predictor": "predictor",
    "probabilities_to_instances": "postprocess",
    "batch_job": "batch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
