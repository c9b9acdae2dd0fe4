"""The checks behind :class:`.settings.SegmentSettings`: one ``SettingError`` per bad value.

Every check here needs neither the image nor the model, so a bad value fails when the settings
are built, before a model loads or a pixel is read. :class:`SettingError` names the setting and
a value that works; :meth:`SettingError.for_cli` words the same message with the command-line
flag. Nothing here imports torch, dask or zarr.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Tile origins, strides, overlaps and chunk edges are multiples of this (the network pools
#: four times by 2; same value as :data:`.tiling.ALIGN`).
ALIGN = 16
#: What ``export`` may ask for: a QuPath GeoJSON and an ImageJ / Fiji ROI set.
EXPORTS = ("geojson", "imagej")
#: Axis letters an ``axes`` string may use (tifffile / OME: Q, I are "unknown" / "sequence").
AXIS_LETTERS = "TZCSYXQIRHEVLPAMB"
#: Plane axes (everything but Y, X and the channel axes C, S).
PLANE_LETTERS = "".join(a for a in AXIS_LETTERS if a not in "YXCS")

Plane = int | tuple[tuple[str, int], ...] | None


class SettingError(ValueError):
    """A setting has a bad value; the message names it and a value that works.

    Parameters
    ----------
    name : str
        The setting (a :class:`SegmentSettings` field, e.g. ``"tile"``).
    value : object
        The value given.
    problem : str
        What is wrong, without the name (``"must be a multiple of 16"``).
    fix : object, optional
        A value that would work, shown as ``use tile=16`` / ``use --tile 16``.
    """

    def __init__(self, name: str, value: Any, problem: str, fix: Any = None) -> None:
        self.name, self.value, self.problem, self.fix = name, value, problem, fix
        super().__init__(self._render(lambda v: f"{name}={v!r}"))

    def _render(self, spell: Any) -> str:
        text = f"{spell(self.value)} {self.problem}"
        if self.fix is not None:
            text += f"; use {spell(self.fix)}"
        return text

    def for_cli(self) -> str:
        """The message with the command-line flag: ``--tile 7 must be ...; use --tile 16``."""
        flag = cli_flag(self.name)
        return self._render(lambda v: flag if isinstance(v, bool) else f"{flag} {cli_value(v)}")


def cli_flag(name: str) -> str:
    """The ``sa2net segment`` / ``batch`` flag of a setting: ``batch_size`` -> ``--batch-size``."""
    return {"skip_background": "--no-skip-background", "amp": "--amp/--no-amp"}.get(
        name, "--" + name.replace("_", "-")
    )


def cli_value(value: Any) -> str:
    """A value as it is typed on the command line (``{"Z": 3}`` -> ``Z=3``, lists spaced)."""
    if isinstance(value, Mapping):
        value = tuple(value.items())
    if isinstance(value, tuple) and value and all(isinstance(v, tuple) for v in value):
        return ",".join(f"{a}={i}" for a, i in value)
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def aligned(name: str, value: int | None, minimum: int) -> None:
    """Refuse a size that is not a whole number ``>= minimum`` and a multiple of 16."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SettingError(name, value, f"must be a whole number of pixels >= {minimum}", minimum)
    if value % ALIGN:
        fix = max(minimum, round(value / ALIGN) * ALIGN)
        raise SettingError(
            name,
            value,
            f"must be a multiple of {ALIGN} (the network pools four times by 2)",
            fix,
        )


def fraction(name: str, value: float) -> None:
    """Refuse a value outside the open interval (0, 1)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 < value < 1.0:
        raise SettingError(name, value, "must lie strictly between 0 and 1", 0.5)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_plane(value: Any) -> Plane:
    """A ``plane`` setting in its stored form: ``None``, an int, or sorted ``(axis, index)`` pairs.

    Accepts an int, a mapping ``{"Z": 3}``, pairs, or the command-line text ``"3"``,
    ``"Z=3"``, ``"T=0,Z=3"``.
    """
    if value is None or _whole(value):
        return value
    if isinstance(value, str):
        text = value.replace(" ", "")
        if text.isdigit():
            return int(text)
        if not re.fullmatch(r"([A-Za-z]=\d+)(,[A-Za-z]=\d+)*", text):
            raise SettingError("plane", value, "must be a plane index or AXIS=INDEX pairs", "Z=0")
        value = dict(part.split("=") for part in text.split(","))
        value = {a: int(i) for a, i in value.items()}
    pairs = tuple(value.items()) if isinstance(value, Mapping) else value
    if not isinstance(pairs, tuple) or not pairs:
        raise SettingError("plane", value, "must be a plane index or AXIS=INDEX pairs", "Z=0")
    cleaned = {}
    for pair in pairs:
        axis, index = pair if isinstance(pair, tuple) and len(pair) == 2 else (None, None)
        if not isinstance(axis, str) or axis.upper() not in PLANE_LETTERS or len(axis) != 1:
            raise SettingError("plane", value, f"names no plane axis ({PLANE_LETTERS[:2]}, ...)",
                               "Z=0")  # fmt: skip
        if not _whole(index):
            raise SettingError("plane", value, "needs whole plane indices >= 0", "Z=0")
        cleaned[axis.upper()] = index
    return tuple(sorted(cleaned.items()))


def check_axes(axes: Any) -> str | None:
    """``axes`` upper-cased, or a ``SettingError`` for letters that cannot describe an image."""
    if axes is None:
        return None
    text = axes.upper() if isinstance(axes, str) else ""
    if (
        not text
        or any(a not in AXIS_LETTERS for a in text)
        or len(set(text)) != len(text)
        or "Y" not in text
        or "X" not in text
    ):
        raise SettingError(
            "axes", axes, "must be unique axis letters with one Y and one X (T, Z, C, Y, X...)",
            "ZYX",
        )  # fmt: skip
    return text


def check_stitch(stitch_z: Any) -> None:
    """Refuse a Z-stitching IoU outside (0, 1]."""
    if stitch_z is None:
        return
    number = isinstance(stitch_z, (int, float)) and not isinstance(stitch_z, bool)
    if not number or not 0.0 < stitch_z <= 1.0:
        raise SettingError("stitch_z", stitch_z, "must be an overlap (IoU) in (0, 1]", 0.25)


def check_denoise(denoise: Any) -> None:
    """Refuse a smoothing that is not ``None``, ``"auto"`` or a sigma in (0, 5] pixels."""
    if denoise is None or denoise == "auto":
        return
    from .denoise import MAX_SIGMA

    number = isinstance(denoise, (int, float)) and not isinstance(denoise, bool)
    if not number or not 0.0 < denoise <= MAX_SIGMA:
        problem = f"must be a sigma in (0, {MAX_SIGMA:g}] pixels, 'auto' or off"
        raise SettingError("denoise", denoise, problem, 1)


def check_flatten(flatten: Any) -> None:
    """Refuse a flattening that is not ``True``, ``False`` or ``"auto"``."""
    if not (isinstance(flatten, bool) or flatten == "auto"):
        raise SettingError("flatten", flatten, "must be True, False or 'auto'", "auto")


def check_exports(export: Any) -> tuple[str, ...]:
    """``export`` as a sorted tuple of known formats (a string or an iterable of them)."""
    if export is None:
        return ()
    names = (export,) if isinstance(export, str) else tuple(export)
    unknown = [n for n in names if n not in EXPORTS]
    if unknown:
        raise SettingError("export", unknown[0], f"is not one of {', '.join(EXPORTS)}", EXPORTS[0])
    return tuple(sorted(set(names)))
