"""``sa2net demo``: the bundled model on the bundled sample and on a large synthetic mosaic.

Shows the whole product offline in one command: the shipped weights load with no network, a real
nuclei image is segmented in memory, and a slide-sized mosaic (the sample mirror-tiled into a
tiled uint16 TIFF on disk) goes through the out-of-core pipeline into an OME-Zarr pyramid.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="segment the bundled sample and a large synthetic mosaic with the bundled model",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--out", type=Path, default=Path("sa2net-demo"), help="output folder")
    parser.add_argument("--model", help="checkpoint or bundled name (default: bundled default)")
    parser.add_argument(
        "--size", type=int, default=4096, help="edge of the synthetic mosaic in pixels"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier demo outputs")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def mirror_tile(image: np.ndarray, y0: int, x0: int, shape: tuple[int, int]) -> np.ndarray:
    """The window ``[y0:y0+h, x0:x0+w]`` of ``image`` repeated with mirroring in both axes."""
    h, w = image.shape[:2]
    ys = np.arange(y0, y0 + shape[0]) % (2 * h)
    xs = np.arange(x0, x0 + shape[1]) % (2 * w)
    ys = np.where(ys < h, ys, 2 * h - 1 - ys)
    xs = np.where(xs < w, xs, 2 * w - 1 - xs)
    return image[np.ix_(ys, xs)]


def write_mosaic(image: np.ndarray, path: Path, size: int, tile: int = 512) -> Path:
    """Write a ``size × size`` mirror-tiled mosaic of a ``YX`` image as a tiled TIFF, tile by tile.

    The mosaic is never held in memory whole; an existing file of the right shape is reused.
    """
    import tifffile

    if path.exists():
        with tifffile.TiffFile(path) as tif:
            if tif.series[0].shape == (size, size):
                return path
    tiles = (
        mirror_tile(image, y, x, (tile, tile))
        for y in range(0, size, tile)
        for x in range(0, size, tile)
    )
    partial = path.with_name(f".{path.name}.partial")
    tifffile.imwrite(
        partial,
        tiles,
        shape=(size, size),
        dtype=image.dtype,
        tile=(tile, tile),
        compression="zlib",
        bigtiff=size * size * image.itemsize > 2**31,
    )
    partial.replace(path)
    return path


def _segment(image, target: Path, args: argparse.Namespace, label: str) -> None:
    from ..inference import segment_job
    from ._bar import drive

    started = time.perf_counter()
    result = drive(
        segment_job(
            image,
            model=args.model,
            device=args.device,
            out=target,
            overwrite=args.overwrite,
        ),
        quiet=args.quiet,
    )
    seconds = time.perf_counter() - started
    height, width = result.provenance["image_shape"][:2]
    rate = f", {height * width / 1e6 / seconds:.2f} MP/s"
    print(
        f"{label}: {result.n_objects} nuclei in {seconds:.1f} s on {result.device}{rate}"
        f" -> {result.path}"
    )


def run(args: argparse.Namespace) -> int:
    from .. import _sample_data
    from ..model import DEFAULT_MODEL, list_bundled_models

    if args.size < 256:
        raise ValueError(f"--size must be at least 256 pixels, got {args.size}")
    if args.model is None and DEFAULT_MODEL not in list_bundled_models():
        raise ValueError(
            f"the bundled model {DEFAULT_MODEL!r} is not installed; pass --model FILE.pt"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    sample = _sample_data.nuclei_fluorescence()[0][0]
    print(f"model: {args.model or DEFAULT_MODEL} (bundled, no network needed)")
    _segment(sample, args.out / "nuclei_sample_labels.tif", args, "bundled sample")
    mosaic = write_mosaic(sample, args.out / f"mosaic_{args.size}.tif", args.size)
    _segment(mosaic, args.out / f"mosaic_{args.size}_labels.zarr", args, f"{args.size}² mosaic")
    print(f"open the results in napari: napari {args.out / f'mosaic_{args.size}_labels.zarr'}")
    return 0
