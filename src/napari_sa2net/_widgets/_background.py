"""What the scan skipped as empty background, shown over the image as a translucent layer.

The engine announces a ``BackgroundMap`` (a low-resolution boolean map: True where no predicted
tile reaches) before any tile is predicted. When anything was skipped, an Image layer
"<image> skipped background" shows those areas in blue over the image, at the map's
resolution, so a user can check that no tissue was left out (and turn skipping off in the widget
if it was). A new run on the same image replaces the layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._layers import yx_transform


def background_layer_name(image_layer: Any) -> str:
    return f"{image_layer.name} skipped background"


def show_skipped(viewer: Any, image_layer: Any, info: Any) -> Any | None:
    """Add (or replace) the skipped-background layer for ``info``; ``None`` if nothing was."""
    name = background_layer_name(image_layer)
    if name in viewer.layers:
        viewer.layers.remove(name)
    if not info.tiles_skipped:
        return None
    base = yx_transform(image_layer)
    # A cell of the map spans `cell` grid pixels; a grid pixel spans image_shape / shape pixels.
    steps = [info.cell * i / g for i, g in zip(info.image_shape, info.shape)]
    scale = tuple(s * step for s, step in zip(base["scale"], steps))
    translate = tuple(t + s * (step - 1) / 2
                      for t, s, step in zip(base["translate"], base["scale"], steps))  # fmt: skip
    return viewer.add_image(
        info.skipped.astype(np.uint8),
        name=name,
        scale=scale,
        translate=translate,
        colormap="blue",
        contrast_limits=(0, 1),
        opacity=0.35,
        blending="additive",
        metadata={"tiles_skipped": info.tiles_skipped, "tiles_total": info.tiles_total},
    )
