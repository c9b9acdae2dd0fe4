"""``sa2net train``: train a model from folders of image / label pairs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from folders of image/label pairs",
        description=(
            "Train SA2-Net on images/NAME.tif + labels/NAME.tif (instance ids, 0 = background). "
            "OUT (e.g. run.pt) is the best checkpoint by validation score; run.last.pt and "
            "run.last.state.pt hold the latest epoch for --resume run.last.pt. Without "
            "--val-images, 10% of the training images (at least one) are held out for "
            "validation."
        ),
    )
    parser.add_argument("--images", type=Path, required=True, help="folder of training images")
    parser.add_argument("--labels", type=Path, required=True, help="folder of instance labels")
    parser.add_argument("--val-images", type=Path, help="folder of validation images")
    parser.add_argument("--val-labels", type=Path, help="folder of validation labels")
    parser.add_argument("--config", default="sa2net-small", help="model configuration name")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (.pt)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="total number of epochs (default 100)")
    budget.add_argument(
        "--time-budget", type=float, metavar="MINUTES", help="stop after the epoch that crosses it"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--mode", choices=("instance", "binary"), default="instance")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=256, help="side of the training crops")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps-per-epoch", type=int, help="default: one pass over the pixels")
    parser.add_argument("--val-every", type=int, default=1, help="validate every N epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--scale-jitter", type=float, default=0.0, help="random zoom range of rotated crops"
    )
    parser.add_argument(
        "--boundary-width", type=_width, default=None, metavar="PX|auto",
        help="pixels of the boundary class inside each object (default auto: about a ninth "
        "of the objects' median diameter, 1-5 px; 3 px for 27-px nuclei)",
    )  # fmt: skip
    parser.add_argument(
        "--augment", default="basic", metavar="basic|noise|photometric|focus|medium|wide",
        help="basic: flips, turns, mild intensity jitter; noise: also shot/read noise on "
        "some crops; photometric: also noise or an uneven background on some crops; focus: "
        "also a 0.5-2 px blur on a quarter of the crops; medium: "
        "also blur, saturation, uneven background, noise and few grey levels on a few crops; "
        "wide: on most crops",
    )  # fmt: skip
    parser.add_argument(
        "--centre-map", choices=("on", "off"), default=None,
        help="instance mode: also learn each object's centre map (distance to its edge, 1 at "
        "its centre), from which inference seeds one object per nucleus; touching nuclei "
        "split better (default: the TrainConfig default)",
    )  # fmt: skip
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    parser.add_argument("--resume", type=Path, help="continue from OUT.last.pt of an earlier run")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def _width(text: str) -> int | None:
    """``--boundary-width``: a whole number of pixels (at least 1) or ``auto`` (``None``)."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of pixels >= 1 or auto, got {text!r}"
        )
    return value


def run(args: argparse.Namespace) -> int:
    from ..engine.train import TrainConfig, train_job
    from ._bar import drive

    cfg = TrainConfig(
        images=args.images,
        labels=args.labels,
        out=args.out,
        val_images=args.val_images,
        val_labels=args.val_labels,
        config=args.config,
        mode=args.mode,
        epochs=args.epochs,
        time_budget_minutes=args.time_budget,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        crop=args.crop,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        amp=not args.no_amp,
        resume=args.resume,
        overwrite=args.overwrite,
        val_every=args.val_every,
        scale_jitter=args.scale_jitter,
        boundary_width=args.boundary_width,
        augment=args.augment,
        **({} if args.centre_map is None else {"centre": args.centre_map == "on"}),
    )
    job = train_job(cfg)
    first = next(job)  # data loaded and device resolved: say where training runs
    print(first.message)
    result = drive(job, quiet=args.quiet, record=True)  # a line per finished epoch
    print(f"stopped after epoch {result.epochs_done} ({result.stopped}) on {result.device}")
    if result.best_path is not None:
        scores = ", ".join(f"{k} {v:.4f}" for k, v in result.best_metrics.items() if k != "lr")
        print(f"best epoch {result.best_epoch}: {scores}")
        print(f"best checkpoint: {result.best_path}")
    print(f"last checkpoint: {result.last_path}")
    return 0
