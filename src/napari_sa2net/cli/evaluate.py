"""``sa2net evaluate``: score a model on a folder of image / label pairs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._settings_args import diameter_value

COLUMNS = ("dice", "iou", "f1_50", "f1_75", "aji")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model on image/label pairs (Dice, IoU, F1@0.5/0.75, AJI)",
        description=(
            "Segment every image of --images as sa2net segment does (same tiling, size "
            "estimate and post-processing) and compare the labels with --labels: pixel Dice "
            "and IoU of the foreground, "
            "instance F1 at IoU 0.5 and 0.75, and the Aggregated Jaccard Index, per image and "
            "as the mean over images."
        ),
    )
    parser.add_argument("--model", required=True, help="checkpoint file or bundled model name")
    parser.add_argument("--images", type=Path, required=True, help="folder of images")
    parser.add_argument("--labels", type=Path, required=True, help="folder of instance labels")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--min-size", type=int, help="drop objects smaller than this (pixels)")
    parser.add_argument(
        "--diameter", type=diameter_value, default="auto", metavar="auto|off|PX",
        help="typical object diameter, as for sa2net segment (default auto: measured)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..engine.data import load_labelled_folder
    from ..engine.evaluation import score_labels
    from ..inference.api import segment
    from ..model import load_model, resolve_device

    device = resolve_device(args.device)
    model = load_model(args.model, device=device)
    items = load_labelled_folder(args.images, args.labels)
    if items[0].image.shape[-1] != model.in_channels:
        raise ValueError(
            f"the images have {items[0].image.shape[-1]} channel(s) but the model expects "
            f"{model.in_channels}: evaluate on images of the kind the model was trained on"
        )
    width = max(len("mean"), *(len(it.name) for it in items))
    print(f"{args.model} on {device}, {len(items)} image(s)")
    for item in items:
        if item.split_ids:
            print(
                f"note: {item.name}: {item.split_ids} label id(s) each mark several separate "
                "objects; each piece is scored as an object of its own"
            )
    print(f"{'image':<{width}}  " + "  ".join(f"{c:>6}" for c in COLUMNS))
    rows = []
    for item in items:
        result = segment(item.image, model=model, device=str(device), min_size=args.min_size,
                         diameter=args.diameter)  # fmt: skip
        scores = score_labels(item.labels, result.labels)
        rows.append([scores[c] for c in COLUMNS])
        print(f"{item.name:<{width}}  " + "  ".join(f"{v:6.4f}" for v in rows[-1]))
    mean = np.mean(rows, axis=0)
    print(f"{'mean':<{width}}  " + "  ".join(f"{v:6.4f}" for v in mean))
    return 0
