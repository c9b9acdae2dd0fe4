"""napari-sa2net: SA2-Net segmentation for microscopy in napari, on the CLI and on dask clusters.

The public API is small and imports nothing heavy until it is called:

- :func:`create_model` builds a named SA2-Net configuration,
- :func:`load_model` rebuilds a model from a checkpoint file or a bundled model name,
- :func:`segment` runs tiled inference on an array or an image file and returns instance labels.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "load_model", "segment"]


def create_model(name: str = "sa2net-small", **kwargs: Any) -> Any:
    """Build the network of a named configuration; see :func:`napari_sa2net.model.create_model`."""
    from .model import create_model as _create

    return _create(name, **kwargs)


def load_model(path_or_name: Any, **kwargs: Any) -> Any:
    """Load a checkpoint file or a bundled model; see :func:`napari_sa2net.model.load_model`."""
    from .model import load_model as _load

    return _load(path_or_name, **kwargs)


def segment(image: Any, **kwargs: Any) -> Any:
    """Segment an image into instance labels; see :func:`napari_sa2net.inference.segment`."""
    from .inference import segment as _segment

    return _segment(image, **kwargs)
