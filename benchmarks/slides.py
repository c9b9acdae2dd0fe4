"""Benchmark slides made of real nuclei on a camera-noise canvas (run by hand; not in the suite).

A scanned fluorescence slide is mostly empty glass: camera noise around a dark offset, with
tissue in places. These slides imitate that from the hand-annotated nuclei images (the uint16
768×869 ones of ``nuclei-fluo/train``): each image is shifted so that its background sits at the
canvas offset, flipped at random and laid on a grid, and the rest of the slide is noise drawn
from the images' own background (Gaussian, the standard deviation of their pixel-to-pixel
differences, i.e. the camera noise without the shading).

- ``dense``: the whole slide is tissue (the mosaic).
- ``sparse``: a ``tissue × tissue`` mosaic in the centre of a noise canvas; its centre is the
  *same pixels* as the dense slide of that size, so both must give the same objects there.

Written tile by tile as a tiled, zlib-compressed uint16 TIFF (or a zarr array), never whole.

Examples::

    python benchmarks/slides.py dense 4096 /tmp/slides/dense_4096.tif
    python benchmarks/slides.py sparse 16384 /tmp/slides/sparse_16384.tif --tissue 4096
    python benchmarks/slides.py dense 65536 /tmp/slides/wide.zarr --height 3072
"""

from __future__ import annotations

import argparse
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nuclei-fluo"
#: Background level of the canvas (ADU), near that of the source images.
OFFSET = 1000
TILE = 512


@lru_cache(maxsize=1)
def _sources(data: str) -> tuple[list[np.ndarray], float]:
    """The uint16 nuclei images, background-shifted to :data:`OFFSET`, and the noise sd."""
    import tifffile

    images, noise = [], []
    for path in sorted(Path(data, "train", "images").glob("*.tif")):
        image = tifffile.imread(path)
        if image.dtype != np.uint16:
            continue
        labels = tifffile.imread(Path(data, "train", "labels", path.name))
        background = image[labels == 0].astype(np.float64)
        diffs = np.diff(image.astype(np.float64), axis=1)[labels[:, 1:] == 0]
        noise.append(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / np.sqrt(2))
        shifted = image.astype(np.int32) - int(np.median(background)) + OFFSET
        images.append(np.clip(shifted, 0, 65535).astype(np.uint16))
    if not images:
        raise SystemExit(f"no uint16 images under {data}/train/images")
    return images, float(np.median(noise))


def mosaic_tile(y: int, x: int, shape: tuple[int, int], data: str = str(DATA)) -> np.ndarray:
    """Pixels ``[y:y+h, x:x+w]`` of the infinite mosaic (a fixed grid of flipped images)."""
    images, _ = _sources(data)
    h0, w0 = images[0].shape
    out = np.empty(shape, np.uint16)
    for gy in range(y // h0, (y + shape[0] - 1) // h0 + 1):
        for gx in range(x // w0, (x + shape[1] - 1) // w0 + 1):
            rng = np.random.default_rng((gy * 7919 + gx) % 2**32)
            image = images[int(rng.integers(len(images)))]
            if rng.random() < 0.5:
                image = image[::-1]
            if rng.random() < 0.5:
                image = image[:, ::-1]
            ys = slice(max(y, gy * h0), min(y + shape[0], (gy + 1) * h0))
            xs = slice(max(x, gx * w0), min(x + shape[1], (gx + 1) * w0))
            out[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x] = image[
                ys.start - gy * h0 : ys.stop - gy * h0, xs.start - gx * w0 : xs.stop - gx * w0
            ]
    return out


def noise_tile(y: int, x: int, shape: tuple[int, int], data: str = str(DATA)) -> np.ndarray:
    """Camera noise around :data:`OFFSET`, seeded by the tile's position (reproducible)."""
    _, sd = _sources(data)
    rng = np.random.default_rng((y * 104729 + x) % 2**32)
    return np.clip(rng.normal(OFFSET, sd, shape).round(), 0, 65535).astype(np.uint16)


def slide_tile(kind: str, size: int, tissue: int, y: int, x: int, shape, data: str = str(DATA)):
    """One tile of a ``dense`` or ``sparse`` slide (``tissue`` edge of the centre mosaic)."""
    if kind == "dense":
        return mosaic_tile(y, x, shape, data)
    lo, hi = (size - tissue) // 2, (size - tissue) // 2 + tissue
    out = noise_tile(y, x, shape, data)
    ys = slice(max(y, lo), min(y + shape[0], hi))
    xs = slice(max(x, lo), min(x + shape[1], hi))
    if ys.start < ys.stop and xs.start < xs.stop:
        inner = mosaic_tile(ys.start - lo, xs.start - lo, (ys.stop - ys.start, xs.stop - xs.start))
        out[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x] = inner
    return out


def write_slide(
    kind: str, size: int, path: Path, tissue: int = 4096, height: int | None = None
) -> Path:
    """Write a slide as a tiled TIFF (``.tif``) or a zarr array (``.zarr``), tile by tile.

    ``size`` is its width, and its height unless ``height`` is given (dense slides only).
    """
    path = Path(path)
    if path.exists():
        return path
    if height is not None and kind != "dense":
        raise SystemExit("--height is for dense slides only")
    rows, cols = (height or size), size
    path.parent.mkdir(parents=True, exist_ok=True)
    tiles = (
        slide_tile(kind, size, tissue, y, x, (min(TILE, rows - y), min(TILE, cols - x)))
        for y in range(0, rows, TILE)
        for x in range(0, cols, TILE)
    )
    partial = path.with_name(f".{path.name}.partial")
    if path.suffix == ".zarr":
        import zarr

        array = zarr.open_array(
            str(partial), mode="w", shape=(rows, cols), chunks=(1024, 1024), dtype="uint16"
        )
        for y in range(0, rows, 1024):
            for x in range(0, cols, 1024):
                shape = (min(1024, rows - y), min(1024, cols - x))
                array[y : y + shape[0], x : x + shape[1]] = slide_tile(
                    kind, size, tissue, y, x, shape
                )
    else:
        import tifffile

        tifffile.imwrite(
            partial,
            tiles,
            shape=(rows, cols),
            dtype=np.uint16,
            tile=(TILE, TILE),
            compression="zlib",
            bigtiff=rows * cols * 2 > 2**31,
        )
    partial.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("dense", "sparse"))
    parser.add_argument("size", type=int, help="slide edge (its width) in pixels")
    parser.add_argument("out", type=Path, help="output .tif or .zarr")
    parser.add_argument("--tissue", type=int, default=4096, help="edge of the sparse centre")
    parser.add_argument("--height", type=int, help="a dense slide this high (default: square)")
    args = parser.parse_args()
    print(write_slide(args.kind, args.size, args.out, args.tissue, args.height))


if __name__ == "__main__":
    main()
