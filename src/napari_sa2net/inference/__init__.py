"""Tiled inference: plan → predict → merge, post-processing, the dask pipeline, batch folders.

Names are exported lazily (module ``__getattr__``) so ``import napari_sa2net.inference`` loads
neither torch nor dask; the defining submodule is imported on first use of a name.
"""

from __future__ import annotations

from .._lazy import lazy_exports

#: Public name -> submodule that defines it.
_EXPORTS: dict[str, str] = {
    "segment_job": "api",
    "segment": "api",
    "SegmentResult": "results",
    "ObjectTable": "results",
    "PlaneDone": "results",
    "SegmentSettings": "settings",
    "SettingError": "settings",
    "TilePlan": "tiling",
    "Predictor": "predictor",
    "probabilities_to_instances": "postprocess",
    "batch_job": "batch",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
