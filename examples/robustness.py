"""Score cross-validation fold models on held-out images degraded like other acquisitions.

Usage::

    python examples/robustness.py TRAIN_DIR VAL_DIR --cv cv/RECIPE --out robust.csv \\
        [--kinds clean,lowlight,dim8,saturated,blur,gradient] [--folds 0,1,2] [--seeds 0,1,2] \\
        [--min-fraction 0.1] [--denoise auto,off] [--flatten auto,off]
    python examples/robustness.py --summarize robust.csv [other.csv ...]

``--cv`` is a results folder of ``examples/cross_validate.py`` (its ``fold-K/model.last.pt``;
with ``--seeds``, also each seed's ``fold-K-seed-S``); every held-out image of fold K is degraded
in its raw intensities, then segmented by each of fold K's models through the engine
(``segment``, no rescaling) and scored against its labels. The summary averages a fold's seeds
before it takes mean ± sd over folds, and gives the sd over seeds of the mean F1 @ 0.5: a
recipe's gain on a degradation counts only where it is larger than that. The degradations
stand for acquisitions the training data does not hold:

- ``lowlight``: a photon-starved camera, 25 photons at the nuclei's brightest, Poisson noise
  plus 2 e- read noise, 16-bit;
- ``dim8``: 8-bit with the nuclei only 16 grey levels above a background of 10;
- ``saturated``: the brighter half of the nuclear signal clipped, 8-bit;
- ``blur``: out of focus, Gaussian sigma 2 px;
- ``gradient``: uneven illumination, the background rising from 0 to 0.9 of the nuclei's
  brightness across the field, the nuclei's contrast shrinking with it.

Each degradation draws its noise from a generator seeded by the image's index, so a file of rows
is reproducible. ``--min-fraction F`` sets the size filter to F times the area of the fold
model's typical nucleus (default: the engine's own rule). ``--denoise`` scores each given
smoothing setting (``auto``, ``off`` or a sigma in pixels; default ``auto``, the engine's),
``--flatten`` each flattening setting (``auto``, ``on``, ``off``; default ``auto``).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).parent))
from cross_validate import fold_name, load_items, seed_spread

from napari_sa2net import load_model, segment
from napari_sa2net.cli._settings_args import denoise_value, flatten_value
from napari_sa2net.engine.crossval import crowded_counts, crowded_mask, group_folds
from napari_sa2net.engine.evaluation import score_labels
from napari_sa2net.inference.rescale import DIAMETER_KEY

METRICS = ("dice", "f1_50", "f1_75", "aji")


def _unit(image: np.ndarray) -> np.ndarray:
    """The image in float32, its 1st / 99.8th percentiles at 0 / 1 (the working units)."""
    x = image.astype(np.float32)
    low, high = np.percentile(x, (1, 99.8))
    return (x - low) / max(float(high - low), 1e-6)


def _lowlight(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    photons = rng.poisson(np.clip(x, 0, None) * 25 + 2).astype(np.float32)
    counts = (photons + rng.normal(0, 2, x.shape)) * 40 + 100
    return np.clip(counts, 0, 65535).astype(np.uint16)


def _gradient(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[:2]
    ramp = (np.linspace(0, 0.6, width, dtype=np.float32)[None, :]
            + np.linspace(0, 0.3, height, dtype=np.float32)[:, None])  # fmt: skip
    if x.ndim == 3:
        ramp = ramp[..., None]
    return ((x * (1 - 0.4 * ramp / 0.9) + ramp) * 3000 + 100).astype(np.uint16)


def _blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = (2.0, 2.0) + (0.0,) * (x.ndim - 2)
    return (ndi.gaussian_filter(x, sigma) * 3000 + 200).astype(np.float32)


#: Degradations of an image in working units (see the module docstring).
KINDS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "lowlight": _lowlight,
    "dim8": lambda x, rng: np.clip(np.round(x * 16 + 10), 0, 255).astype(np.uint8),
    "saturated": lambda x, rng: (np.clip(x, None, 0.45) * 200 + 20).astype(np.uint8),
    "blur": _blur,
    "gradient": _gradient,
}


def degrade(image: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """``image`` as the acquisition ``kind`` would have recorded it (``clean``: as it is)."""
    if kind == "clean":
        return image
    if kind not in KINDS:
        raise SystemExit(f"--kinds: unknown {kind!r}; choose from clean, {', '.join(KINDS)}")
    return KINDS[kind](_unit(image), np.random.default_rng(seed))


def run(args: argparse.Namespace) -> None:
    items = load_items(args.folders)
    folds = group_folds([it["name"] for it in items], 3)
    kinds = args.kinds.split(",")
    smoothings = args.denoise.split(",")
    flattenings = args.flatten.split(",")
    rows = []
    seeds = [int(v) for v in args.seeds.split(",")]
    for seed, k in itertools.product(seeds, (int(v) for v in args.folds.split(","))):
        path = args.cv / fold_name(k, seed) / "model.last.pt"
        if not path.exists():
            raise SystemExit(
                f"{path} does not exist; run examples/cross_validate.py with --seeds {seed} "
                f"first, or leave seed {seed} out of --seeds"
            )
        model = load_model(str(path))
        min_size = None
        if args.min_fraction is not None:
            area = math.pi / 4 * float(model.metadata[DIAMETER_KEY]) ** 2
            min_size = max(16, round(args.min_fraction * area))
        for i in folds[k]:
            item, truth = items[i], items[i]["truth"]
            region = crowded_mask(truth)
            for kind, smooth, flat in itertools.product(kinds, smoothings, flattenings):
                result = segment(degrade(item["array"], kind, i), model=model, device="cpu",
                                 diameter=None, min_size=min_size,
                                 denoise=denoise_value(smooth),
                                 flatten=flatten_value(flat))  # fmt: skip
                crowd = crowded_counts(truth, result.labels, region)
                rows.append({
                    "fold": k, "seed": seed, "image": item["key"], "kind": kind, "denoise": smooth,
                    "sigma": result.provenance["denoise"]["sigma"], "flatten": flat,
                    "flattened": result.provenance["flatten"]["applied"],
                    **score_labels(truth, result.labels),
                    "crowd_true": crowd.n_true, "crowd_pred": crowd.n_pred,
                    "crowd_hit": crowd.matched_true[0.5] + crowd.matched_pred[0.5],
                })  # fmt: skip
                print(f"fold {k} seed {seed} {item['key']} {kind} denoise {smooth} "
                      f"flatten {flat}: F1 {rows[-1]['f1_50']:.3f}", flush=True)  # fmt: skip
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def summarize(paths: list[Path]) -> None:
    """Per file and degradation: mean ± sd over folds of the per-fold means (each fold's seeds
    averaged), the sd over seeds of the mean F1 @ 0.5, and the crowded F1 pooled over seeds."""
    for path in paths:
        with open(path, newline="") as handle:
            rows = [{"seed": "0", **r} for r in csv.DictReader(handle)]  # before --seeds: 0
        print(path)

        def setup(r: dict) -> tuple:
            return r["kind"], r.get("denoise", "off"), r.get("flatten", "off")

        for kind, smooth, flat in dict.fromkeys(setup(r) for r in rows):
            chosen = [r for r in rows if setup(r) == (kind, smooth, flat)]
            per: dict[str, list] = {}
            for r in chosen:
                per.setdefault(r["fold"], []).append(r)
            smoothed = sum(1 for r in chosen if r.get("sigma") not in (None, "", "None"))
            flattened = sum(1 for r in chosen if r.get("flattened") == "True")
            seeds = sorted({r["seed"] for r in chosen})
            line = (f"  {kind:10s} denoise {smooth:4s} ({smoothed} smoothed) flatten {flat:4s} "
                    f"({flattened} flattened) folds {','.join(sorted(per))} "
                    f"seeds {','.join(seeds)}")  # fmt: skip
            for m in METRICS:
                means = np.array([np.mean([float(r[m]) for r in per[f]]) for f in sorted(per)])
                line += f"  {m} {means.mean():.3f} ± {means.std():.3f}"
            spread = seed_spread(chosen)
            if spread is not None:
                line += f"  seed sd of f1_50 {spread:.3f}"
            true = sum(int(r["crowd_true"]) for r in chosen)
            pred = sum(int(r["crowd_pred"]) for r in chosen)
            hits = sum(int(r["crowd_hit"]) for r in chosen)
            print(line + f"  crowded F1 {hits / max(true + pred, 1):.3f} ({pred} / {true})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", type=Path, nargs="*", help="folders with images/ + labels/")
    parser.add_argument("--cv", type=Path, help="results folder of examples/cross_validate.py")
    parser.add_argument("--out", type=Path, help="CSV of per-image rows")
    parser.add_argument("--kinds", default="clean," + ",".join(KINDS))
    parser.add_argument("--folds", default="0,1,2")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--min-fraction", type=float, default=None)
    parser.add_argument("--denoise", default="auto", help="comma-separated: auto, off, sigma")
    parser.add_argument("--flatten", default="auto", help="comma-separated: auto, on, off")
    parser.add_argument("--summarize", type=Path, nargs="*", help="CSV files to tabulate")
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize)
    elif args.folders and args.cv and args.out:
        run(args)
    else:
        parser.error("give TRAIN_DIR VAL_DIR --cv FOLDER --out FILE, or --summarize FILE ...")


if __name__ == "__main__":
    main()
