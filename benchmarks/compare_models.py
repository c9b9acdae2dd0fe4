"""CPU time of two checkpoints on the same images, through ``segment`` (by hand; not a test).

Usage::

    OMP_NUM_THREADS=2 python benchmarks/compare_models.py OLD.pt NEW.pt IMAGE [IMAGE ...] \\
        [--repeats 3] [--old-diameter off] [--new-diameter auto]

The two models run alternately, image by image and repeat by repeat (the machine's speed drifts,
and other jobs share it), each on its own loaded copy with its halo already recorded; the
median time of each model per image and the ratio NEW / OLD of the summed medians are printed.
``--old-diameter`` / ``--new-diameter`` (``auto``, the default; ``off``; or pixels) set each
side's ``diameter=``: ``--old-diameter off`` times a release before the size estimate existed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_sa2net import load_model, segment
from napari_sa2net.cli._settings_args import diameter_value
from napari_sa2net.inference.sizing import model_halo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--old-diameter", type=diameter_value, default="auto")
    parser.add_argument("--new-diameter", type=diameter_value, default="auto")
    args = parser.parse_args()
    models = [load_model(path, device="cpu") for path in (args.old, args.new)]
    for model in models:
        model_halo(model)
    diameters = (args.old_diameter, args.new_diameter)
    totals = [0.0, 0.0]
    for path in args.images:
        image = tifffile.imread(path)
        times: list[list[float]] = [[], []]
        for _ in range(args.repeats):
            for which, model in enumerate(models):
                started = time.perf_counter()
                segment(image, model=model, device="cpu", diameter=diameters[which])
                times[which].append(time.perf_counter() - started)
        medians = [float(np.median(t)) for t in times]
        totals = [a + b for a, b in zip(totals, medians)]
        print(f"{path.name}: old {medians[0]:.2f} s, new {medians[1]:.2f} s")
    print(f"sum of medians: old {totals[0]:.2f} s, new {totals[1]:.2f} s, "
          f"new / old {totals[1] / totals[0]:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
