"""The segmentation settings as flags, shared by ``sa2net segment`` and ``sa2net batch``.

Every field of :class:`~napari_sa2net.inference.settings.SegmentSettings` a user may choose has
one flag here (``--tile``, ``--interior-threshold``, ...), and :func:`settings_from_args` builds
the settings at once, so a bad value stops the command before any model loads, worded with the
flag (``--tile 7 must be ...; use --tile 16``).
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from typing import Any


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the model, device, tiling, object and cluster flags to ``parser``."""
    model = parser.add_argument_group("model and device")
    model.add_argument("--model", help="checkpoint, bioimage.io package or bundled model name")
    model.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    model.add_argument("--channel", type=int, nargs="+", help="channel index(es) to segment")
    model.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="autocast to bf16/fp16 on CUDA (default: on there)",
    )
    tiling = parser.add_argument_group("tiling (automatic unless given)")
    tiling.add_argument("--tile", type=int, help="tile edge in pixels, a multiple of 16")
    tiling.add_argument("--overlap", type=int, help="tile overlap in pixels, a multiple of 16")
    tiling.add_argument("--batch-size", type=int, help="tiles per forward pass")
    tiling.add_argument(
        "--chunk",
        type=int,
        help="chunk edge of the pipeline, a multiple of 16 "
        "(default: a multiple of tile - overlap near 1024 on a CPU)",
    )
    tiling.add_argument(
        "--no-skip-background",
        dest="skip_background",
        action="store_false",
        help="predict every tile, also those of empty background",
    )
    tiling.add_argument("--scheduler", help="dask.distributed scheduler address (trusted only)")
    tiling.add_argument(
        "--tta",
        type=int,
        default=1,
        help="test-time augmentation: average 2, 4 or 8 flips/rotations of every tile "
        "(that many times slower; default 1 = off)",
    )
    tiling.add_argument(
        "--denoise",
        type=denoise_value,
        default="auto",
        metavar="auto|off|SIGMA",
        help="smooth every tile by a Gaussian of SIGMA px before the model, for low-light "
        "images; default auto: 1 px when the image's noise is at least 4%% of its range",
    )
    tiling.add_argument(
        "--flatten",
        type=flatten_value,
        default="auto",
        metavar="auto|on|off",
        help="subtract the background of uneven illumination (vignetting, haze) before the "
        "model; default auto: only where it varies by at least 30%% of the image's range",
    )
    objects = parser.add_argument_group("objects")
    objects.add_argument(
        "--interior-threshold",
        type=float,
        default=0.5,
        help="interior probability that seeds an object, or for a model with a centre map "
        "the centre value (default 0.5)",
    )
    objects.add_argument(
        "--foreground-threshold",
        type=float,
        default=0.5,
        help="probability above which a pixel is object (default 0.5)",
    )
    objects.add_argument(
        "--min-size",
        type=int,
        help="smallest object in pixels (default: a fifth of the area of the image's "
        "typical object as measured, else of the model's, 111 for the bundled model; "
        "objects cut by the image's edge are kept down to a quarter of it)",
    )
    size = objects.add_mutually_exclusive_group()
    size.add_argument(
        "--diameter",
        type=diameter_value,
        default="auto",
        help="typical object diameter in pixels in your images; the image is rescaled to the "
        "model's training object size and the labels back (bundled model: 26.6 px). "
        "Default auto: measured on a sample of the image, rescaled only when far from the "
        "trained size; off: never rescaled",
    )
    size.add_argument(
        "--scale", type=float, help="resample factor applied before prediction (2 = enlarge)"
    )  # fmt: skip
    _add_stack_arguments(parser)


def _add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    stacks = parser.add_argument_group("Z-stacks and time-lapses")
    stacks.add_argument(
        "--plane",
        help="segment one plane: an index along the image's one plane axis, or AXIS=INDEX "
        "pairs such as Z=3 or T=0,Z=3 (the other plane axes are still walked); default: "
        "every plane, the labels keep the image's Z and T axes",
    )
    stacks.add_argument(
        "--axes", help="the image's axes when its metadata is missing or wrong, e.g. ZYX, TCYX"
    )
    stacks.add_argument(
        "--stitch-z",
        type=float,
        metavar="IOU",
        help="link objects of neighbouring Z planes overlapping by at least this IoU into one "
        "3-D object (one id through Z), as Cellpose's stitch_threshold; e.g. 0.25",
    )
    outputs = parser.add_argument_group("measurements and exports (beside the labels)")
    outputs.add_argument(
        "--measure",
        action="store_true",
        help="write NAME_objects.csv: per object its plane, area (px, µm²), centroid, box, "
        "mean / max / integrated intensity, eccentricity, solidity, perimeter",
    )
    outputs.add_argument(
        "--export",
        nargs="+",
        choices=("geojson", "imagej"),
        default=(),
        help="geojson: NAME.geojson of detections for QuPath (File > Import objects); imagej: "
        "NAME_rois.zip for Fiji's ROI Manager",
    )


def _auto_off_or_number(text: str, noun: str, example: str) -> float | str | None:
    """``auto``, ``off`` / ``none`` (``None``) or a number; else one line naming ``noun``."""
    word = text.strip().lower()
    if word == "auto":
        return "auto"
    if word in ("off", "none"):
        return None
    try:
        return float(word)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not {noun}: give {example}, auto or off"
        ) from None


def diameter_value(text: str) -> float | str | None:
    """``--diameter``: pixels, ``auto`` (measure it) or ``off`` (no rescaling)."""
    return _auto_off_or_number(text, "a diameter", "pixels (e.g. 30)")


def denoise_value(text: str) -> float | str | None:
    """``--denoise``: a Gaussian sigma in pixels, ``auto`` or ``off``."""
    return _auto_off_or_number(text, "a smoothing", "a sigma in pixels (e.g. 1)")


def flatten_value(text: str) -> bool | str:
    """``--flatten``: ``auto``, ``on`` or ``off``."""
    word = text.strip().lower()
    choices = {"auto": "auto", "on": True, "off": False}
    if word not in choices:
        raise argparse.ArgumentTypeError(f"{text!r} is not a choice: give auto, on or off")
    return choices[word]


#: Flags whose values go into the settings unchanged, by field name.
FIELDS = ("model", "device", "amp", "tile", "overlap", "batch_size", "chunk", "skip_background",
          "scheduler", "interior_threshold", "foreground_threshold", "min_size", "diameter",
          "scale", "tta", "denoise", "flatten", "plane", "axes", "stitch_z", "measure",
          "export")  # fmt: skip


def settings_from_args(args: argparse.Namespace) -> Any:
    """The :class:`SegmentSettings` of the parsed flags (checked now, errors name the flag)."""
    from ..inference.settings import SegmentSettings

    values = {name: getattr(args, name) for name in FIELDS}
    if args.channel is not None:
        values["channel"] = args.channel[0] if len(args.channel) == 1 else tuple(args.channel)
    with flag_errors():
        return SegmentSettings(**values)


@contextmanager
def flag_errors():
    """Re-word a setting error raised inside the block with its command-line flag."""
    from ..inference.settings import SettingError

    try:
        yield
    except SettingError as err:
        raise ValueError(err.for_cli()) from None
