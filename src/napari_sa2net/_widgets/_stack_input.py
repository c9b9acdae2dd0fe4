"""What the segment widget hands the engine for a stack layer: every plane, or the current one.

napari layers carry no axis letters, so a layer's axes come from its file (``layer.source``:
an OME-TIFF, an ImageJ hyperstack, an OME-Zarr, where the file's axes match the layer's
dimensions; this also gives the OME channel names) or, failing that, from the number of
leading dimensions: ``ZYX``, ``TZYX``. RGB layers end in their colour axis, ``YXC``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._layers import current_plane, lazy_level0

#: Letters of a layer's leading axes when its file does not say them, by their number.
DEFAULT_LEAD = {0: "", 1: "Z", 2: "TZ", 3: "TCZ"}


@dataclass(frozen=True)
class LayerAxes:
    """The axes of an image layer's data and the names of its channels (if any)."""

    axes: str
    channel_names: tuple[str, ...] = ()

    @property
    def is_stack(self) -> bool:
        return any(a not in "YXC" for a in self.axes)


def _from_file(layer: Any, ndim: int) -> LayerAxes | None:
    path = getattr(getattr(layer, "source", None), "path", None)
    if not path or not Path(path).exists():
        return None
    from ..io import open_image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            image = open_image(path)
    except Exception:  # not ours to read: fall back on the layer's dimensions
        return None
    axes = image.axes.replace("S", "C")
    if len(axes) != ndim or axes[-2:] not in ("YX",):
        return None
    return LayerAxes(axes, tuple(image.channel_names))


def layer_axes(layer: Any) -> LayerAxes:
    """The :class:`LayerAxes` of an image layer (see the module docstring)."""
    data = lazy_level0(layer)
    if layer.rgb:
        return LayerAxes(DEFAULT_LEAD.get(data.ndim - 3, "") + "YXC")
    found = _from_file(layer, data.ndim)
    if found is not None:
        return found
    lead = DEFAULT_LEAD.get(data.ndim - 2)
    if lead is None:
        raise ValueError(f"a {data.ndim}-D image layer: give its axes (e.g. TCZYX) under Axes")
    return LayerAxes(lead + "YX")


def job_image(layer: Any, viewer: Any, every_plane: bool) -> tuple[Any, str, tuple[int, ...]]:
    """``(image, axes, plane index)`` to segment: the whole layer, or its current plane.

    The current plane keeps a channel axis (C is picked by ``channel``); the index is the
    plane's position along the layer's leading axes (empty for the whole layer).
    """
    found = layer_axes(layer)
    if every_plane or not found.is_stack:
        return lazy_level0(layer), found.axes, ()
    data = lazy_level0(layer)
    _, picked = current_plane(layer, viewer)
    index = tuple(slice(None) if a == "C" else i for a, i in zip(found.axes, picked))
    kept = "".join(a for a, i in zip(found.axes, index) if isinstance(i, slice))
    return data[index], kept + found.axes[len(index) :], picked


def place_plane(labels: np.ndarray, shape: tuple[int, ...], index: tuple[int, ...]) -> Any:
    """A lazy ``shape`` stack of empty planes with ``labels`` at ``index`` (the current plane)."""
    import dask.array as da

    stack = da.zeros(shape, dtype=labels.dtype, chunks=(1,) * (len(shape) - 2) + shape[-2:])
    stack[index] = labels
    return stack
