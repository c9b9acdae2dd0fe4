"""``--diameter`` / ``--scale``: the object-size options shared by ``segment`` and ``batch``."""

from __future__ import annotations

import argparse
from typing import Any


def add_object_size_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--diameter",
        type=float,
        help="typical object diameter in pixels in your images; the image is rescaled to the "
        "model's training object size and the labels back (bundled model: 26.7 px)",
    )
    group.add_argument(
        "--scale", type=float, help="resample factor applied before prediction (2 = enlarge)"
    )


def object_size_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        name: getattr(args, name)
        for name in ("diameter", "scale")
        if getattr(args, name, None) is not None
    }
