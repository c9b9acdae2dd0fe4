"""Reproduce the training of the bundled fluorescence-nuclei model.

Usage::

    python examples/train_bundled_model.py TRAIN_DIR VAL_DIR --out nuclei-fluo.pt --epochs 60 \
        --boundary-width 3 --augment focus

``TRAIN_DIR`` and ``VAL_DIR`` each hold ``images/NAME.tif`` and ``labels/NAME.tif`` (instance ids),
e.g. the hand-annotated nuclei of mnfinder 1.2.3. The run's own files are
``<out stem>.run.pt`` (the epoch with the best validation F1) and ``<out stem>.run.last.pt`` (the
last epoch). ``--keep last`` (the default) writes the last epoch to ``--out``, re-saved with its
measured halo: it is the checkpoint the cross-validation protocol scores
(``examples/cross_validate.py``), and nothing but the recipe chooses it. ``--keep best`` keeps
the epoch chosen on the few validation images instead, which picked a worse checkpoint than the
last on the 3-px run (see the model card).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_sa2net.cli._bar import drive
from napari_sa2net.engine.augment import PRESETS
from napari_sa2net.engine.train import TrainConfig, train_job
from napari_sa2net.inference.sizing import model_halo
from napari_sa2net.model.checkpoints import load_model, save_checkpoint


def run_path(out: Path) -> Path:
    """Where the training run writes its best-epoch checkpoint (``.run.last.pt`` beside it)."""
    return out.with_name(f"{out.stem}.run{out.suffix or '.pt'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train_dir", type=Path)
    parser.add_argument("val_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("nuclei-fluo.pt"))
    parser.add_argument("--config", default="sa2net-small")
    parser.add_argument("--minutes", type=float, default=75.0, help="training time budget")
    parser.add_argument("--epochs", type=int, default=None, help="instead of --minutes")
    parser.add_argument("--crop", type=int, default=128, help="training crop edge")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--resume", type=Path, default=None)
    parser.add_argument("--keep", default="last", choices=("last", "best"),
                        help="which epoch becomes --out (default: the last)")  # fmt: skip
    # The recipe's choices for unseen data, each kept because cross-validation over
    # acquisitions supported it (examples/cross_validate.py; the model card has the table).
    parser.add_argument("--boundary-width", type=int, default=3)
    parser.add_argument("--contact-weight", type=float, default=1.0)
    parser.add_argument("--contact-bias", type=float, default=0.0)
    parser.add_argument("--augment", default="focus", choices=PRESETS)
    parser.add_argument("--scale-jitter", type=float, default=0.3)
    parser.add_argument("--centre-map", choices=("on", "off"), default="off",
                        help="also learn the centre map that seeds one nucleus each")  # fmt: skip
    args = parser.parse_args()
    config = TrainConfig(
        images=args.train_dir / "images",
        labels=args.train_dir / "labels",
        val_images=args.val_dir / "images",
        val_labels=args.val_dir / "labels",
        out=run_path(args.out),
        config=args.config,
        mode="instance",
        epochs=args.epochs,
        time_budget_minutes=None if args.epochs else args.minutes,
        steps_per_epoch=50,
        batch_size=8,
        crop=args.crop,
        lr=1e-3,
        restart_epochs=10,
        scale_jitter=args.scale_jitter,
        boundary_width=args.boundary_width,
        contact_weight=args.contact_weight,
        contact_bias=args.contact_bias,
        augment=args.augment,
        centre=args.centre_map == "on",
        seed=0,
        device=args.device,
        resume=args.resume,
        overwrite=args.resume is None,
    )
    result = drive(train_job(config))
    print(f"stopped after epoch {result.epochs_done} ({result.stopped}) on {result.device}")
    print(f"best epoch {result.best_epoch}: {result.best_metrics}")
    print(f"best checkpoint: {result.best_path}; last: {result.last_path}")
    chosen = result.last_path if args.keep == "last" else result.best_path
    if chosen is None:
        raise SystemExit(f"no {args.keep} checkpoint was written; nothing saved to {args.out}")
    model = load_model(chosen)
    print(f"halo {model_halo(model)} px; {args.keep} epoch written to {args.out}")
    save_checkpoint(model, args.out)


if __name__ == "__main__":
    main()
