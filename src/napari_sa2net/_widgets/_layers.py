"""Layer pickers and lazy access to layer data: never pull a whole slide into memory."""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import QComboBox, QWidget


class LayerCombo(QComboBox):
    """A combo box listing the viewer's layers of one type, kept in sync with the layer list."""

    def __init__(self, viewer: Any, layer_type: type, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.layer_type = layer_type
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.moved, events.reordered):
            event.connect(self.refresh)
        self.refresh()

    def refresh(self, event: Any = None) -> None:
        """Re-list matching layers, keeping the current choice when it still exists."""
        current = self.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, self.layer_type)]
        for layer in self.viewer.layers:
            layer.events.name.connect(self.refresh)
        self.blockSignals(True)
        self.clear()
        self.addItems(names)
        if current in names:
            self.setCurrentText(current)
        elif names and event is not None and getattr(event, "type", "") == "inserted":
            self.setCurrentIndex(len(names) - 1)
        self.blockSignals(False)
        self.currentIndexChanged.emit(self.currentIndex())

    def layer(self) -> Any | None:
        """The selected layer, or ``None``."""
        name = self.currentText()
        if name and name in self.viewer.layers:
            return self.viewer.layers[name]
        return None


def lazy_level0(layer: Any) -> Any:
    """The full-resolution array of an image layer, as numpy or a lazy dask array.

    Multiscale layers give their level 0; arrays that are neither numpy nor dask (zarr arrays,
    tifffile stores) are wrapped in dask without reading any pixel.
    """
    data = layer.data[0] if layer.multiscale else layer.data
    if isinstance(data, np.ndarray):
        return data
    import dask.array as da

    if isinstance(data, da.Array):
        return data
    chunks = getattr(data, "chunks", None)
    return da.from_array(data, chunks=chunks if chunks else "auto")


def current_plane(layer: Any, viewer: Any) -> tuple[Any, tuple[int, ...]]:
    """The 2-D plane (``YX`` or ``YXC`` for RGB) of a layer at the viewer's current position.

    Returns the lazily indexed array and the indices taken along the leading axes (empty for a
    2-D layer).
    """
    data = lazy_level0(layer)
    spatial = layer.ndim
    lead = spatial - 2
    if lead <= 0:
        return data, ()
    world = viewer.dims.point[-spatial:]
    index = layer.world_to_data(world)[:lead]
    shape = data.shape[:lead]
    picked = tuple(int(np.clip(round(i), 0, n - 1)) for i, n in zip(index, shape))
    return data[picked], picked


def yx_transform(layer: Any) -> dict[str, tuple[float, ...]]:
    """``scale`` and ``translate`` of a layer's last two (Y, X) axes, for a 2-D result layer."""
    return {
        "scale": tuple(float(s) for s in layer.scale[-2:]),
        "translate": tuple(float(t) for t in layer.translate[-2:]),
    }


def layer_channels(layer: Any) -> int:
    """Channels of an image layer: 3 or 4 for RGB(A), 1 otherwise."""
    if getattr(layer, "rgb", False):
        return int(lazy_level0(layer).shape[-1])
    return 1


def rectangles_in(shapes: Any, image: Any) -> list[tuple[int, int, int, int]]:
    """Bounding boxes ``(y0, x0, y1, x1)`` of a Shapes layer's shapes in an image's pixel grid.

    Every shape counts by its bounding box (rectangles are the intended use); coordinates go
    through world space, so layers with different scale or translate line up. Boxes are clipped
    to the image; empty ones are dropped.
    """
    height, width = lazy_level0(image).shape[-3:-1] if image.rgb else lazy_level0(image).shape[-2:]
    boxes = []
    for vertices in shapes.data:
        world = np.array([shapes.data_to_world(v) for v in vertices])
        pixels = np.array([image.world_to_data(w) for w in world])[:, -2:]
        y0, x0 = np.floor(pixels.min(axis=0)).astype(int)
        y1, x1 = np.ceil(pixels.max(axis=0)).astype(int)
        y0, y1 = max(0, y0), min(height, y1)
        x0, x1 = max(0, x0), min(width, x1)
        if y1 > y0 and x1 > x0:
            boxes.append((int(y0), int(x0), int(y1), int(x1)))
    return boxes
