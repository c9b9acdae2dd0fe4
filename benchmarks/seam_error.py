"""How far tiled probabilities and objects stray from whole-image inference, per tile overlap.

``python benchmarks/seam_error.py IMAGE.tif [--model nuclei-fluo] [--overlaps 0 96 112 128 144]``

The whole image goes through the network in one pass (memory: ~0.8 GB per megapixel for the
bundled model), then through the tiler (512² tiles, batch 1, the engine's blending) with each
overlap, the same normalization statistics for both. Printed per overlap: the halo it gives
(3/8 of it), the largest and the 99.99th-percentile absolute probability difference, the
fraction of pixels whose most likely class differs, and the objects of the tiled map against the
whole map's (same thresholds: F1 at IoU 0.5, AJI, count). The model's suggested halo and its
measured reach are printed first: the automatic overlap is the smallest grid-aligned overlap
whose halo covers the suggested halo (and the denoise reach when denoising).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from napari_sa2net.engine.evaluation import predict_probabilities
from napari_sa2net.engine.metrics import aggregated_jaccard_index, instance_f1
from napari_sa2net.inference.pipeline import predict_in_memory
from napari_sa2net.inference.postprocess import probabilities_to_instances
from napari_sa2net.inference.predictor import Predictor
from napari_sa2net.inference.tiling import TilePlan, halo_of
from napari_sa2net.io import read_image_plane
from napari_sa2net.model import suggested_halo
from napari_sa2net.model.checkpoints import load_model
from napari_sa2net.model.reach import measure_reach
from napari_sa2net.normalization import Normalization


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image")
    parser.add_argument("--model", default="nuclei-fluo")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlaps", type=int, nargs="+", default=[0, 96, 112, 128, 144])
    parser.add_argument("--min-size", type=int, default=55)
    args = parser.parse_args()

    model = load_model(args.model).eval()
    print(f"{args.model}: reach {measure_reach(model)} px (99.9 % of the input gradient), "
          f"suggested halo {suggested_halo(model)} px")  # fmt: skip
    image = read_image_plane(args.image)
    image = image[..., None] if image.ndim == 2 else image
    stats = model.normalization.statistics(image)
    start = time.perf_counter()
    with torch.inference_mode():
        whole = predict_probabilities(
            model, Normalization.apply(image, *stats), torch.device("cpu")
        )
    print(f"whole image {image.shape[:2]} in one pass: {time.perf_counter() - start:.1f} s")
    expected = probabilities_to_instances(whole, "instance", min_size=args.min_size)
    predictor = Predictor(model, "cpu", batch_size=1, stats=stats)
    print("overlap halo tiles  max|dp|  p99.99|dp|  class-changed  objects  F1@0.5    AJI")
    for overlap in args.overlaps:
        plan = TilePlan(image.shape[:2], args.tile, overlap)
        tiled = predict_in_memory(image, plan, predictor)
        diff = np.abs(tiled - whole)
        changed = float(np.mean(tiled.argmax(0) != whole.argmax(0)))
        labels = probabilities_to_instances(tiled, "instance", min_size=args.min_size)
        f1 = instance_f1(expected, labels).f1
        aji = aggregated_jaccard_index(expected, labels)
        print(f"{overlap:7d} {halo_of(overlap):4d} {len(plan.tiles()):5d} {diff.max():8.4f} "
              f"{np.quantile(diff, 0.9999):11.5f} {changed:14.2e} {labels.max():4d}/"
              f"{expected.max():<4d} {f1:7.4f} {aji:7.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
