"""The Labels layer of a stack run: the image's dims, scale and translate, filled plane by plane.

The engine announces each finished plane with a ``PlaneDone`` payload (a level-0 ``"plane"``
event); when the run keeps its labels in memory the payload carries the plane's labels, and the
layer shows it at once, so the dims slider walks the planes done so far and a plane not yet
finished shows as empty, never as stale labels of an earlier run. At the end the layer takes
the final labels (read lazily when written to a folder) and the objects table as ``features``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def transform(image_layer: Any, ndim: int) -> dict[str, tuple[float, ...]]:
    """``scale`` and ``translate`` of the last ``ndim`` axes of ``image_layer``."""
    return {
        "scale": tuple(float(s) for s in image_layer.scale[-ndim:]),
        "translate": tuple(float(t) for t in image_layer.translate[-ndim:]),
    }


def set_features(layer: Any, result: Any) -> None:
    """The result's objects table as the layer's ``features`` (its ``index`` maps labels)."""
    table = getattr(result, "objects", None)
    if table is not None and len(table):
        layer.features = table.features()


class StackView:
    """Shows a stack run's labels as they come; see the module docstring."""

    def __init__(self, viewer: Any, image_layer: Any, name: str) -> None:
        self.viewer, self.image_layer, self.name = viewer, image_layer, name
        self.layer: Any = None
        self.planes = 0

    def on_plane(self, done: Any) -> None:
        """Show a finished plane (a ``PlaneDone``) when it carries its labels."""
        self.planes = done.index
        if done.labels is None or self.image_layer not in self.viewer.layers:
            return
        if self.layer is None or self.layer not in self.viewer.layers:
            self.layer = self.viewer.add_labels(
                np.zeros(done.shape, np.uint32), name=self.name,
                **transform(self.image_layer, len(done.shape)),
            )  # fmt: skip
        self.layer.data[done.lead] = done.labels
        self.layer.refresh()

    def finish(self, result: Any) -> Any:
        """The final labels in the layer (created if no plane was shown); returns the layer."""
        from ._segment_output import result_data

        data, metadata = result_data(result)
        ndim = data[0].ndim if isinstance(data, list) else data.ndim
        if (
            self.layer is not None
            and self.layer in self.viewer.layers
            and not isinstance(data, list)
        ):
            self.layer.data = data
        else:
            self.discard()
            self.layer = self.viewer.add_labels(
                data, name=self.name, multiscale=isinstance(data, list), metadata=metadata,
                **transform(self.image_layer, ndim),
            )  # fmt: skip
        self.layer.metadata = metadata
        set_features(self.layer, result)
        return self.layer

    def discard(self) -> None:
        """Remove the layer (a cancelled or failed run)."""
        if self.layer is not None and self.layer in self.viewer.layers:
            self.viewer.layers.remove(self.layer)
        self.layer = None


def place_current_plane(viewer: Any, labels_layer: Any, image_layer: Any, picked: tuple) -> Any:
    """Give the labels of the current plane the image's dims: that plane filled, others empty.

    A 2-D labels layer over a stack would show on every plane; a lazy stack of empty planes
    with this one at ``picked`` shows where it belongs. Pyramids (large written results) stay
    as they are.
    """
    from ._layers import lazy_level0
    from ._stack_input import layer_axes, place_plane

    data = labels_layer.data
    if labels_layer.multiscale or data.ndim != 2:
        return labels_layer
    found = layer_axes(image_layer)
    keep = [i for i, a in enumerate(found.axes[: len(picked)]) if a != "C"]
    shape = tuple(lazy_level0(image_layer).shape[i] for i in keep) + tuple(data.shape)
    stack = place_plane(np.asarray(data), shape, tuple(picked[i] for i in keep))
    index = viewer.layers.index(labels_layer)
    viewer.layers.remove(labels_layer)  # napari keeps a layer's number of dimensions
    kept = {"name": labels_layer.name, "metadata": labels_layer.metadata,
            "opacity": labels_layer.opacity}  # fmt: skip
    layer = viewer.add_labels(stack, **kept, **transform(image_layer, len(shape)))
    viewer.layers.move(viewer.layers.index(layer), index)
    return layer
