"""Cross-validate a training recipe over folds grouped by acquisition, through the real engine.

Usage::

    OMP_NUM_THREADS=2 python examples/cross_validate.py TRAIN_DIR VAL_DIR --out cv/baseline \\
        [--folds 3] [--epochs 8] [--minutes 12] [--set boundary_width=2 ...] [--tta 1,4] \\
        [--interior-threshold 0.5,0.6] [--min-size 16,56] [--seeds 0,1,2]
    python examples/cross_validate.py --summarize cv/baseline cv/other --table cv/table.md

The train and val images are pooled and split into ``--folds`` folds that never share an
acquisition (the file-name prefix before ``__``, see ``napari_sa2net.engine.crossval``). For each
fold a model is trained on the other folds with the recipe of ``examples/train_bundled_model.py``
(overrides: ``--set FIELD=VALUE`` of ``TrainConfig``) for a fixed number of epochs (one cosine
cycle; ``--minutes`` caps a fold's training time) and its last checkpoint segments the held-out
images with ``napari_sa2net.segment`` (tiling and post-processing as users get them). Nothing
held out selects anything: the fold's validation runs once, after the last epoch.

Training seeds: one 8-epoch run is a noisy measurement (the same recipe trained with another
seed moved one fold's F1 @ 0.5 by 0.02 and its crowded F1 by 0.06), so ``--seeds 0,1,2``
trains each fold once per seed (``fold-K`` for seed 0, ``fold-K-seed-S`` for the others) and
recipes are compared on the mean over seeds.

Per image (``OUT/images.csv``): Dice, F1 @ IoU 0.5 and 0.75, AJI, objects, seconds, and the
crowded-window counts; ``OUT/summary.md``: mean ± standard deviation over the folds (each fold's
mean over its seeds), the standard deviation over seeds of the whole mean F1 @ 0.5, and the
crowded scores pooled over all held-out images (and seeds). A fold whose checkpoint exists is
not trained again, so more ``--tta`` / ``--interior-threshold`` values can be scored later.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import time
from pathlib import Path

import numpy as np

from napari_sa2net import load_model, segment
from napari_sa2net.cli._bar import drive
from napari_sa2net.cli._settings_args import diameter_value
from napari_sa2net.engine.crossval import crowded_counts, crowded_mask, group_folds
from napari_sa2net.engine.data import load_labelled_folder
from napari_sa2net.engine.evaluation import score_labels
from napari_sa2net.engine.train import TrainConfig, train_job
from napari_sa2net.inference.sizing import model_halo
from napari_sa2net.model.checkpoints import read_checkpoint

METRICS = ("dice", "f1_50", "f1_75", "aji")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="*", help="folders with images/ + labels/")
    parser.add_argument("--out", type=Path, help="results folder of this recipe")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--only-fold", type=int, default=None, help="run one fold (0-based)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per fold (one LR cycle)")
    parser.add_argument("--minutes", type=float, default=None, help="cap per fold's training")
    parser.add_argument("--config", default="sa2net-small")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--tta", default="1", help="comma-separated tta values to score")
    parser.add_argument("--interior-threshold", default="0.5", help="comma-separated values")
    parser.add_argument(
        "--min-size", default="auto", help="comma-separated object sizes (pixels) or auto"
    )
    parser.add_argument(
        "--diameter", default="auto", help="comma-separated: auto, off or pixels (diameter=)"
    )
    parser.add_argument("--summarize", type=Path, nargs="*", help="results folders to tabulate")
    parser.add_argument("--table", type=Path, default=None, help="markdown file for --summarize")
    return parser.parse_args()


def overrides(pairs: list[str]) -> dict[str, object]:
    """``["boundary_width=2"]`` -> ``{"boundary_width": 2}``, typed by the TrainConfig field."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    values = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        if name not in fields or not text:
            raise SystemExit(f"--set {pair!r}: give FIELD=VALUE with a TrainConfig field")
        kind = str(fields[name].type)  # the annotation, e.g. "int | None"
        if kind.startswith("bool"):
            values[name] = text.lower() in ("1", "true", "yes")
        elif kind.startswith("str"):
            values[name] = text
        else:
            values[name] = int(text) if kind.startswith("int") else float(text)
    return values


def link_folder(items, folder: Path) -> Path:
    """A folder of symlinks ``images/`` + ``labels/`` to the items' files."""
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for item in items:
        for sub, source in (("images", item["image"]), ("labels", item["labels"])):
            link = folder / sub / f"{item['key']}.tif"
            if not link.exists():
                link.symlink_to(source)
    return folder


def fold_name(fold: int, seed: int) -> str:
    """The folder of fold ``fold`` trained with ``seed`` (seed 0 keeps the first runs' names)."""
    return f"fold-{fold}" if seed == 0 else f"fold-{fold}-seed-{seed}"


def fold_finished(last: Path, epochs: int, minutes: float | None = None) -> bool:
    """Whether ``last`` holds a fold's finished training (all ``epochs``, or ``minutes`` spent).

    ``model.last.pt`` is rewritten after every epoch, so an interrupted run leaves one behind;
    only a checkpoint whose metadata reports the whole run may be reused."""
    if not last.exists():
        return False
    training = read_checkpoint(last).get("metadata", {}).get("training", {})
    if training.get("epochs_done", 0) >= epochs:
        return True
    return minutes is not None and training.get("seconds", 0) >= minutes * 60


def train_fold(args, items, held: list[int], fold_dir: Path, seed: int = 0) -> Path:
    """Train on every item outside ``held``; return the last checkpoint (trained once).

    A fold whose training was interrupted is trained again from the start, not resumed, so that
    every fold of a comparison comes from one uninterrupted, seeded run."""
    last = fold_dir / "model.last.pt"
    if fold_finished(last, args.epochs, args.minutes):
        return last
    if last.exists():
        print(f"fold {fold_dir.name}: unfinished training found, training it again", flush=True)
    train = link_folder([it for i, it in enumerate(items) if i not in held], fold_dir / "train")
    val = link_folder([items[held[0]]], fold_dir / "val")  # scored once at the end, never chosen
    recipe = {
        "config": args.config, "mode": "instance", "epochs": args.epochs,
        "time_budget_minutes": args.minutes, "steps_per_epoch": 50, "batch_size": 8, "crop": 128,
        "lr": 1e-3, "restart_epochs": args.epochs, "scale_jitter": 0.3, "seed": seed,
        "device": "cpu", "val_every": args.epochs, "overwrite": True,
        **overrides(args.set),
    }  # fmt: skip
    config = TrainConfig(
        images=train / "images", labels=train / "labels", val_images=val / "images",
        val_labels=val / "labels", out=fold_dir / "model.pt", **recipe,
    )  # fmt: skip
    result = drive(train_job(config))
    print(f"fold {fold_dir.name}: {result.epochs_done} epochs ({result.stopped})", flush=True)
    return last


def score_image(model, item, tta: int, threshold: float, min_size: int | None = None,
                diameter: float | str | None = "auto") -> dict:  # fmt: skip
    """Segment one held-out image with the engine and score it (whole image and crowded)."""
    started = time.perf_counter()
    result = segment(item["array"], model=model, device="cpu", tta=tta,
                     interior_threshold=threshold, min_size=min_size,
                     diameter=diameter)  # fmt: skip
    seconds = time.perf_counter() - started
    gt, pred = item["truth"], result.labels
    crowd = crowded_counts(gt, pred, crowded_mask(gt))
    return {
        **score_labels(gt, pred),
        "n_true": int(len(np.unique(gt)) - 1), "n_pred": int(result.n_objects),
        "seconds": round(seconds, 2), "megapixels": gt.size / 1e6,
        "crowd_true": crowd.n_true, "crowd_pred": crowd.n_pred,
        "crowd_hit_true_50": crowd.matched_true[0.5], "crowd_hit_pred_50": crowd.matched_pred[0.5],
        "crowd_hit_true_75": crowd.matched_true[0.75],
        "crowd_hit_pred_75": crowd.matched_pred[0.75],
    }  # fmt: skip


def load_items(folders: list[Path]) -> list[dict]:
    """Every labelled image of the folders, with a unique key (name, split-tagged on clashes)."""
    items, seen = [], set()
    for folder in folders:
        for entry in load_labelled_folder(folder / "images", folder / "labels"):
            key = entry.name if entry.name not in seen else f"{entry.name}~{folder.name}"
            seen.add(key)
            items.append({
                "key": key, "name": entry.name, "array": entry.image, "truth": entry.labels,
                "image": (folder / "images" / f"{entry.name}.tif").resolve(),
                "labels": (folder / "labels" / f"{entry.name}.tif").resolve(),
            })  # fmt: skip
    return items


def run(args: argparse.Namespace) -> None:
    items = load_items(args.folders)
    folds = group_folds([it["name"] for it in items], args.folds)
    ttas = [int(v) for v in args.tta.split(",")]
    thresholds = [float(v) for v in args.interior_threshold.split(",")]
    sizes = [None if v == "auto" else int(v) for v in args.min_size.split(",")]
    diameters = [diameter_value(v) for v in args.diameter.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    rows_path = args.out / "images.csv"
    args.out.mkdir(parents=True, exist_ok=True)
    for seed, (k, held) in itertools.product(seeds, enumerate(folds)):
        if args.only_fold is not None and k != args.only_fold:
            continue
        fold_dir = args.out / fold_name(k, seed)
        model = load_model(train_fold(args, items, held, fold_dir, seed), device="cpu")
        model_halo(model)  # measured once here, not inside the first image's time
        for tta, threshold, size, diameter in itertools.product(
            ttas, thresholds, sizes, diameters
        ):
            rows = []
            for i in held:
                item = items[i]
                row = score_image(model, item, tta, threshold, size, diameter)
                rows.append({"fold": k, "seed": seed, "image": item["key"], "tta": tta,
                             "interior_threshold": threshold,
                             "min_size": "auto" if size is None else size,
                             "diameter": "off" if diameter is None else diameter,
                             **row})  # fmt: skip
                print(f"fold {k} seed {seed} tta {tta} t {threshold} min {rows[-1]['min_size']} "
                      f"diameter {rows[-1]['diameter']} "
                      f"{item['key']}: F1 {row['f1_50']:.3f} AJI {row['aji']:.3f}",
                      flush=True)  # fmt: skip
            append_rows(rows_path, rows)
    (args.out / "summary.md").write_text(summary_table([args.out]))


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append rows to a CSV (header written with the first rows; a file written before a
    column existed is rewritten with it, see :func:`read_rows` for the old rows' value)."""
    fields = list(rows[0])
    if path.exists():
        with open(path, newline="") as handle:
            old = list(csv.DictReader(handle))
        if old and list(old[0]) != fields:
            rows = [_with_defaults(r) for r in old] + rows
            path.unlink()
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def _with_defaults(row: dict) -> dict:
    """Rows written before ``min_size`` was a column were scored at the then default, 16 px;
    rows written before ``diameter`` was one, with no rescaling (``off``); rows written before
    ``seed`` was one, by models trained with seed 0."""
    return {
        **row,
        "min_size": row.get("min_size") or "16",
        "diameter": row.get("diameter") or "off",
        "seed": row.get("seed") or "0",
    }


def read_rows(folder: Path) -> list[dict]:
    """The rows of a results folder, the latest score of each (fold, image, tta, threshold)."""
    with open(folder / "images.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows = [_with_defaults(r) for r in rows]
    latest = {(r["fold"], r["seed"], r["image"], r["tta"], r["interior_threshold"],
               r["min_size"], r["diameter"]): r for r in rows}  # fmt: skip
    return list(latest.values())


def _fold_means(rows: list[dict], metric: str) -> dict[tuple[str, str], float]:
    """Mean of ``metric`` per (fold, seed)."""
    keys = sorted({(r["fold"], r["seed"]) for r in rows})
    return {
        key: float(np.mean([float(r[metric]) for r in rows if (r["fold"], r["seed"]) == key]))
        for key in keys
    }


def seed_spread(rows: list[dict], metric: str = "f1_50") -> float | None:
    """Sample sd over seeds of each seed's mean over folds of ``metric`` (``None``: one seed)."""
    per = _fold_means(rows, metric)
    seeds = sorted({s for _, s in per})
    if len(seeds) < 2:
        return None
    by_seed = [np.mean([v for (_, s), v in per.items() if s == seed]) for seed in seeds]
    return float(np.std(by_seed, ddof=1))


def summary_line(name: str, rows: list[dict]) -> str:
    """One markdown row: fold means ± sd over folds (each averaged over its seeds), the sd over
    seeds of the mean F1 @ 0.5, the pooled crowded scores, seconds per megapixel."""
    folds = sorted({r["fold"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    cells = []
    for metric in METRICS:
        per = _fold_means(rows, metric)
        means = [np.mean([v for (f, _), v in per.items() if f == fold]) for fold in folds]
        cells.append(
            f"{np.mean(means):.3f} ± {np.std(means, ddof=1) if len(means) > 1 else 0:.3f}"
        )
    spread = seed_spread(rows)
    cells.append(f"{spread:.3f}" if spread is not None else "–")
    total = lambda key: sum(int(r[key]) for r in rows)  # noqa: E731
    n = total("crowd_true") + total("crowd_pred")
    for t in ("50", "75"):
        hits = total(f"crowd_hit_true_{t}") + total(f"crowd_hit_pred_{t}")
        cells.append(f"{hits / n:.3f}" if n else "–")
    cells.append(f"{total('crowd_pred')} / {total('crowd_true')}")
    speed = sum(float(r["seconds"]) for r in rows) / sum(float(r["megapixels"]) for r in rows)
    cells.append(f"{speed:.2f}")
    return f"| {name} | {len(seeds)} | {len(rows)} | " + " | ".join(cells) + " |"


def summary_table(folders: list[Path]) -> str:
    """Markdown table of every (recipe folder, tta, interior threshold, min size, diameter)."""
    lines = [
        "| recipe (tta, interior threshold, min size, diameter) | seeds | images | Dice "
        "| F1 @ 0.5 | F1 @ 0.75 | AJI | seed sd of F1 @ 0.5 | crowded F1 @ 0.5 "
        "| crowded F1 @ 0.75 | crowded objects pred / true | s / MP |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for folder in folders:
        rows = read_rows(folder)
        keys = lambda r: (r["tta"], r["interior_threshold"], r["min_size"], r["diameter"])  # noqa: E731
        for key in sorted({keys(r) for r in rows}):
            subset = [r for r in rows if keys(r) == key]
            name = f"{folder.name} (tta {key[0]}, t {key[1]}, min {key[2]}, diameter {key[3]})"
            lines.append(summary_line(name, subset))
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    if args.summarize:
        table = summary_table(args.summarize)
        print(table)
        if args.table is not None:
            args.table.write_text(table)
        return
    if not args.folders or args.out is None:
        raise SystemExit("give the data folders and --out (or --summarize FOLDER ...)")
    run(args)


if __name__ == "__main__":
    main()
