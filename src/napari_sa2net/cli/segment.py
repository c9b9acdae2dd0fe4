"""``sa2net segment``: tiled segmentation of image files into label TIFFs or OME-Zarr pyramids."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._sizing_args import add_object_size_arguments, object_size_kwargs

#: ``--format auto`` writes OME-Zarr above this many pixels, a label TIFF otherwise.
AUTO_ZARR_ABOVE = 4096 * 4096


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment image files (tiled, out-of-core) into instance labels",
        description=(
            "Segment each INPUT (TIFF/BigTIFF/OME-TIFF/SVS, .zarr, OME-Zarr) into OUT/<stem>.tif "
            "or OUT/<stem>.zarr (OME-Zarr labels with a pyramid), written atomically. Tile, "
            "overlap and batch size are chosen from the model's reach and the free memory "
            "unless given."
        ),
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image file(s)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--model", help="checkpoint file or bundled model name (default: bundled)")
    parser.add_argument("--tile", type=int, help="tile edge in pixels, a multiple of 16")
    parser.add_argument("--overlap", type=int, help="tile overlap in pixels, a multiple of 16")
    parser.add_argument("--batch-size", type=int, help="tiles per forward pass")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--channel", type=int, nargs="+", help="channel index(es) to segment")
    parser.add_argument(
        "--format",
        choices=("auto", "tif", "zarr"),
        default="auto",
        help="label TIFF, OME-Zarr pyramid, or auto (OME-Zarr above 4096² pixels)",
    )
    parser.add_argument("--scheduler", help="dask.distributed scheduler address (default: local)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument(
        "--no-skip-background",
        dest="skip_background",
        action="store_false",
        help="predict every tile, also flat (empty) ones",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_object_size_arguments(parser)
    parser.set_defaults(func=run)


def output_for(path: Path, out: Path, fmt: str, pixels: int, stem: str | None = None) -> Path:
    """``OUT/<stem>.tif`` or ``OUT/<stem>.zarr`` for one input."""
    if fmt == "auto":
        fmt = "zarr" if pixels > AUTO_ZARR_ABOVE else "tif"
    name = stem or path.name.split(".")[0]
    return out / f"{name}.{fmt}"


def run(args: argparse.Namespace) -> int:
    from ..inference import segment_job
    from ..io import open_image
    from ._bar import drive

    channel = None
    if args.channel is not None:
        channel = args.channel[0] if len(args.channel) == 1 else args.channel
    missing = [str(p) for p in args.inputs if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no such input: {', '.join(missing)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.inputs:
        source = open_image(path, channel=channel)
        pixels = source.shape[0] * source.shape[1]
        target = output_for(path, args.out, args.format, pixels, source.name)
        if target.absolute() == path.absolute():
            raise ValueError(f"the output {target} would replace its input; choose another --out")
        job = segment_job(
            str(path),
            model=args.model,
            channel=channel,
            tile=args.tile,
            overlap=args.overlap,
            batch_size=args.batch_size,
            device=args.device,
            out=target,
            overwrite=args.overwrite,
            scheduler=args.scheduler,
            skip_background=args.skip_background,
            **object_size_kwargs(args),
        )
        result = drive(job, quiet=args.quiet)
        mpx = source.shape[0] * source.shape[1] / 1e6
        print(
            f"{path.name}: {result.n_objects} objects, {mpx:.1f} MP in {result.seconds:.1f} s "
            f"({mpx / max(result.seconds, 1e-9):.2f} MP/s) on {result.device} -> {target}"
        )
    return 0
