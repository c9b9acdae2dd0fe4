"""Which planes of an image a run walks: Z-stacks and time-lapses (any axes order, C too).

A plane is a ``Y×X`` image like any other; :func:`layout_of` decides, from the image's plane
axes and the ``plane`` setting, which axes are walked (every plane by default) and which are
fixed. The labels keep the walked axes, in the order T, Z, then any other (the order of NGFF
and ImageJ hyperstacks), so a ZYX image gives ZYX labels and TCYX gives TYX. Axes of length 1
are fixed at 0 and dropped.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .settings import SegmentSettings, SettingError

#: Walked plane axes are ordered by this (others keep the image's order after them).
ORDER = "TZ"


@dataclass(frozen=True)
class StackLayout:
    """The planes a run segments.

    Attributes
    ----------
    walked : tuple of (str, int)
        Plane axes walked and their lengths, in the labels' order.
    fixed : dict of str to int
        Plane axes held at one index (by ``plane``, or of length 1).
    image_axes : str
        The image's own axes (``"TCZYX"``).
    channel_names : tuple of str
        The image's channel names, where the file has them.
    """

    walked: tuple[tuple[str, int], ...]
    fixed: dict[str, int] = field(default_factory=dict)
    image_axes: str = "YX"
    channel_names: tuple[str, ...] = ()

    @property
    def axes(self) -> str:
        """Axes of the labels: the walked plane axes, then ``YX``."""
        return "".join(a for a, _ in self.walked) + "YX"

    @property
    def lead_shape(self) -> tuple[int, ...]:
        return tuple(n for _, n in self.walked)

    @property
    def is_stack(self) -> bool:
        return bool(self.walked)

    def __len__(self) -> int:
        return int(np.prod(self.lead_shape)) if self.walked else 1

    def planes(self) -> Iterator[tuple[tuple[int, ...], dict[str, int] | None]]:
        """``(index into the labels' leading axes, plane= for open_image)`` of every plane."""
        letters = [a for a, _ in self.walked]
        for lead in np.ndindex(*self.lead_shape):
            chosen = self.fixed | dict(zip(letters, (int(i) for i in lead)))
            yield tuple(int(i) for i in lead), chosen or None

    def position(self, lead: tuple[int, ...]) -> dict[str, int]:
        """``{"Z": 3}``: the walked axes' indices of the plane at ``lead``."""
        return {a: int(i) for (a, _), i in zip(self.walked, lead)}


def _fixed(planes: tuple[tuple[str, int], ...], plane: Any, axes: str) -> dict[str, int]:
    sizes = dict(planes)
    if plane is None:
        chosen: dict[str, int] = {}
    elif isinstance(plane, int):
        big = [a for a, n in planes if n > 1]
        if len(big) > 1:
            raise SettingError("plane", plane, f"is ambiguous for axes {axes}: name the axis",
                               f"{big[0]}={plane}")  # fmt: skip
        if not planes:
            if plane:
                raise SettingError("plane", plane, "is out of range: the image has one plane", 0)
            return {}
        chosen = {(big or [planes[0][0]])[0]: plane}
    else:
        chosen = dict(plane)
    for axis, index in chosen.items():
        if axis not in sizes:
            raise SettingError("plane", plane, f"names axis {axis}, which the image (axes "
                               f"{axes}) does not have", None)  # fmt: skip
        if index >= sizes[axis]:
            raise SettingError("plane", plane, f"is out of range: axis {axis} has 0.."
                               f"{sizes[axis] - 1}", f"{axis}={sizes[axis] - 1}")  # fmt: skip
    return {a: 0 for a, n in planes if n == 1} | chosen


def layout_of(image: Any, settings: SegmentSettings) -> StackLayout:
    """The :class:`StackLayout` of ``image`` under ``settings`` (reads metadata only)."""
    from .plan import open_source

    with warnings.catch_warnings():  # opened for its axes: which plane is read does not matter
        warnings.simplefilter("ignore", UserWarning)
        probe = open_source(image, settings.channel, None, settings.axes)
    axes = settings.axes or probe.axes
    fixed = _fixed(probe.planes, settings.plane, axes)
    walked = [(a, n) for a, n in probe.planes if a not in fixed]
    walked.sort(key=lambda p: ORDER.find(p[0]) % (len(ORDER) + 1))
    if settings.stitch_z is not None and "Z" not in dict(walked):
        raise SettingError("stitch_z", settings.stitch_z, "links Z planes, but no Z axis is "
                           f"walked (image axes {axes}); drop it", None)  # fmt: skip
    names = getattr(probe, "channel_names", ())
    return StackLayout(tuple(walked), fixed, axes, names)


def label_pixels(image: Any, settings: SegmentSettings) -> int:
    """Pixels of the labels a run of ``image`` writes (every plane walked), for choosing TIFF
    or OME-Zarr (:func:`.settings.output_format`)."""
    from .plan import open_source

    layout = layout_of(image, settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        height, width, _ = open_source(image, settings.channel, None, settings.axes).shape
    return len(layout) * height * width
