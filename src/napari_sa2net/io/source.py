"""The opened image (:class:`ImageSource`) and the axis rules that bring any array to ``YXC``.

Axis letters follow tifffile / OME: ``Y``, ``X`` spatial; ``C`` channels and ``S`` samples (RGB)
are both channels; ``Z``, ``T`` and any other letter are *plane* axes of which one index is read.
``Q`` and ``I`` (tifffile's "unknown" and "sequence") next to ``YX`` with at most 4 entries are
taken as channels when the image has no other channel axis, so a ``3×Y×X`` stack written without
metadata opens as three channels.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Largest axis length that the guessing rule takes for channels.
MAX_GUESSED_CHANNELS = 4
#: Smallest height and width an image may have.
MIN_SIZE = 2

Plane = int | Mapping[str, int] | None
Channel = int | Sequence[int] | None


@dataclass(frozen=True)
class ImageSource:
    """A 2-D image opened lazily, with the axes and scale it came with.

    Attributes
    ----------
    data : dask.array.Array
        Pixels, axes ``YXC`` (``C`` = 1 for grayscale; only the picked channels), original dtype.
    axes : str
        Axes of the source before any selection, e.g. ``"YXS"``, ``"CYX"``, ``"ZYX"``.
    pixel_size : tuple of float or None
        ``(y, x)`` pixel size in micrometres when the file states it.
    name : str
        Stem for output files (``"slide"`` for ``slide.ome.tif``).
    path : Path or None
        File the image came from, ``None`` for in-memory arrays.
    rgb : bool
        Whether the channels are the red, green and blue of a colour (e.g. H&E) image.
    planes : tuple of (str, int)
        The source's plane axes (Z, T, ...) and their lengths, in the source's order; ``data``
        is one plane of them. Empty for a 2-D image.
    channel_names : tuple of str
        Names of the source's channels where the file states them (OME ``Channel Name``,
        OME-Zarr ``omero`` labels), else empty.
    """

    data: Any
    axes: str
    pixel_size: tuple[float, float] | None
    name: str
    path: Path | None = None
    rgb: bool = False
    planes: tuple[tuple[str, int], ...] = ()
    channel_names: tuple[str, ...] = ()

    @property
    def dtype(self) -> np.dtype:
        """Pixel type of :attr:`data`."""
        return self.data.dtype

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)``."""
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]


def guess_axes(shape: Sequence[int]) -> str:
    """Axes of an array without metadata: ``YX``; ``YXC`` or ``CYX`` by the small-axis rule.

    A 3-D array whose last axis has at most 4 entries (and first axis more) is ``YXC``; one
    whose first axis has at most 4 (and last axis more) is ``CYX``. Anything else is ambiguous
    and raises a ``ValueError`` asking for ``axes=``.
    """
    if len(shape) == 2:
        return "YX"
    if len(shape) == 3:
        lead, trail = shape[0] <= MAX_GUESSED_CHANNELS, shape[-1] <= MAX_GUESSED_CHANNELS
        if trail and not lead:
            return "YXC"
        if lead and not trail:
            return "CYX"
    raise ValueError(
        f"cannot tell the axes of an array of shape {tuple(shape)}; "
        'pass axes= (--axes on the command line), e.g. axes="YXC", "CYX" or "ZYX"'
    )


def normalize_axes(axes: str, shape: Sequence[int]) -> str:
    """Check an axes string against a shape and map ``S`` (and channel-like ``Q``/``I``) to C."""
    axes = axes.upper()
    if len(axes) != len(shape):
        raise ValueError(f"axes {axes!r} do not match an array of {len(shape)} dimensions {shape}")
    if len(set(axes)) != len(axes) or "Y" not in axes or "X" not in axes:
        raise ValueError(
            f"unknown axes {axes!r}: need one Y, one X and unique letters, e.g. 'YXC' or 'CYX'"
        )
    if "C" in axes and "S" in axes:
        raise ValueError(f"axes {axes!r} have two channel axes (C and S); pick one C first")
    axes = axes.replace("S", "C")
    if "C" not in axes:
        for letter in "QI":
            pos = axes.find(letter)
            beside_yx = pos >= 0 and "YX" in (axes[pos + 1 : pos + 3], axes[pos - 2 : pos])
            if beside_yx and shape[pos] <= MAX_GUESSED_CHANNELS:
                return axes.replace(letter, "C")
    return axes


def plane_axes(axes: str, shape: Sequence[int]) -> tuple[tuple[str, int], ...]:
    """The plane axes (not Y, X, C) of normalized ``axes`` with their lengths, in order."""
    return tuple((a, int(n)) for a, n in zip(axes, shape) if a not in "YXC")


def select_plane(data: Any, axes: str, plane: Plane) -> tuple[Any, str]:
    """Index every plane axis (not Y, X, C) once; returns the array and its remaining axes."""
    extra = [(i, a) for i, a in enumerate(axes) if a not in "YXC"]
    if not extra:
        return data, axes
    wanted: dict[str, int]
    if plane is None or isinstance(plane, Mapping):
        wanted = {a: int((plane or {}).get(a, 0)) for _, a in extra}
        unset = [a for _, a in extra if data.shape[axes.index(a)] > 1 and a not in (plane or {})]
        if unset:
            warnings.warn(
                f"image has axes {axes!r} of shape {tuple(data.shape)}; reading plane "
                f"{', '.join(f'{a}=0' for a in unset)} (pass plane=..., --plane on the "
                "command line, to pick another)",
                UserWarning,
                stacklevel=4,
            )
    else:
        big = [a for i, a in extra if data.shape[i] > 1] or [extra[0][1]]
        if len(big) > 1:
            raise ValueError(
                f"plane={plane} is ambiguous for axes {axes!r}; pass a mapping such as "
                f"plane={{{', '.join(repr(a) + ': 0' for a in big)}}} (--plane "
                f"{','.join(a + '=0' for a in big)} on the command line)"
            )
        wanted = {a: 0 for _, a in extra} | {big[0]: int(plane)}
    index = []
    for i, a in enumerate(axes):
        if a in "YXC":
            index.append(slice(None))
            continue
        n = data.shape[i]
        if not -n <= wanted[a] < n:
            raise ValueError(f"plane {a}={wanted[a]} is out of range: axis {a} has 0..{n - 1}")
        index.append(wanted[a])
    return data[tuple(index)], "".join(a for a in axes if a in "YXC")


def to_yxc(
    data: Any, axes: str, *, channel: Channel = None, plane: Plane = None, rgb: bool = False
) -> tuple[Any, bool]:
    """Bring a dask array with ``axes`` to ``YXC``, picking plane(s) and channel(s).

    With ``channel=None`` an RGBA image (``rgb=True`` and 4 channels) loses its alpha channel,
    so an RGBA H&E slide opens as RGB. Returns the ``YXC`` array and whether it is still RGB.
    """
    import dask.array as da

    data, axes = select_plane(data, normalize_axes(axes, data.shape), plane)
    if "C" not in axes:
        data, axes = data[..., None], axes + "C"
    order = [axes.index(a) for a in "YXC"]
    if order != [0, 1, 2]:
        data = da.transpose(data, order)
    n_channels = int(data.shape[2])
    if channel is None:
        if rgb and n_channels == 4:
            data, n_channels = data[:, :, :3], 3
    else:
        picked = [channel] if isinstance(channel, (int, np.integer)) else list(channel)
        bad = [c for c in picked if not (isinstance(c, (int, np.integer)) and 0 <= c < n_channels)]
        if not picked or bad:
            raise ValueError(
                f"channel {channel!r} is out of range: the image has {n_channels} channel(s), "
                f"valid indices are 0..{n_channels - 1}"
            )
        data = data[:, :, [int(c) for c in picked]]
        rgb = rgb and len(picked) == 3
    height, width = int(data.shape[0]), int(data.shape[1])
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(
            f"image is {height}×{width} pixels; at least {MIN_SIZE}×{MIN_SIZE} are needed "
            "(check axes= / --axes and plane= / --plane if the image looks transposed)"
        )
    return data, rgb and int(data.shape[2]) == 3


def grow_chunks(
    shape: Sequence[int], file_chunks: Sequence[int], axes: str, target: int = 512
) -> tuple[int, ...]:
    """Dask chunks that are whole multiples of the file's chunks (tiles or strips).

    ``Y`` and ``X`` chunks grow to the smallest multiple of the file chunk that is at least
    ``target`` pixels (so 240-pixel SVS tiles give 720-pixel chunks and 1-row strips 512 rows),
    channel axes are read whole, plane axes keep the file chunking. Reading one dask chunk
    therefore reads only the tiles inside it.
    """
    chunks = []
    for size, chunk, letter in zip(shape, file_chunks, axes.upper()):
        if letter in "YX":
            chunk = min(size, -(-target // chunk) * chunk)
        elif letter in "CS":
            chunk = size
        chunks.append(max(1, int(chunk)))
    return tuple(chunks)


def stem_of(path: Path) -> str:
    """Output stem of a path: the name without its image suffixes (``a.ome.tif`` -> ``a``)."""
    name = path.name.rstrip("/")
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".svs", ".zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
