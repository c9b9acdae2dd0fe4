"""``sa2net segment``: tiled segmentation of image files into label TIFFs or OME-Zarr pyramids."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._settings_args import add_settings_arguments, flag_errors, settings_from_args


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment image files (tiled, out-of-core) into instance labels",
        description=(
            "Segment each INPUT (TIFF/BigTIFF/OME-TIFF/SVS, .zarr, OME-Zarr) into OUT/<stem>.tif "
            "or OUT/<stem>.zarr (OME-Zarr labels with a pyramid), written atomically. Tile, "
            "overlap and batch size are chosen from the model's reach and the free memory "
            "unless given. All outputs are checked before the first image is segmented."
        ),
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image file(s)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--format",
        choices=("auto", "tif", "zarr"),
        default="auto",
        help="label TIFF, OME-Zarr pyramid, or auto (OME-Zarr above 4096² pixels)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def plan_outputs(inputs: list[Path], out: Path, fmt: str, settings) -> list[tuple[Path, Path]]:
    """``(input, output)`` for every input, refusing collisions before any work."""
    from ..inference.planes import label_pixels
    from ..inference.settings import check_collisions, label_path, output_format
    from ..io.source import stem_of

    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no such input: {', '.join(missing)}")
    pairs = []
    for path in inputs:
        pixels = label_pixels(path, settings)
        pairs.append((path, label_path(out, stem_of(path), output_format(pixels, fmt))))
    check_collisions(pairs)
    return pairs


def taken_outputs(pairs: list[tuple[Path, Path]], settings) -> list[str]:
    """The outputs (labels and the files beside them) that exist already."""
    from ..inference.settings import companion_paths

    files = [t for _, t in pairs] + [
        c for _, t in pairs for c in companion_paths(t, settings).values()
    ]
    return [str(f) for f in files if f.exists()]


def run(args: argparse.Namespace) -> int:
    from ..inference import segment_job
    from ..inference.autosize import describe
    from ..inference.plan import preload
    from ._bar import drive

    settings = settings_from_args(args)
    with flag_errors():
        pairs = plan_outputs(args.inputs, args.out, args.format, settings)
    taken = taken_outputs(pairs, settings)
    if taken and not args.overwrite:
        raise FileExistsError(
            f"the output already exists: {', '.join(taken)}; pass --overwrite to replace it, "
            "or choose another --out folder"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    with flag_errors():
        settings = preload(settings)  # one model load for every input
        for path, target in pairs:
            job = segment_job(str(path), settings, out=target, overwrite=args.overwrite)
            result = drive(job, quiet=args.quiet)
            height, width = result.provenance["image_shape"][:2]
            planes = len(result.provenance.get("planes", [None]))
            mpx = planes * height * width / 1e6
            stack = f" in {planes} planes ({result.axes})" if planes > 1 else ""
            print(
                f"{path.name}: {result.n_objects} objects{stack}, {mpx:.1f} MP in "
                f"{result.seconds:.1f} s ({mpx / max(result.seconds, 1e-9):.2f} MP/s) on "
                f"{result.device} -> {target}"
            )
            if result.provenance.get("diameter"):
                print(f"  {describe(result.provenance['diameter'], result.provenance['scale'])}")
            for kind, written in result.outputs.items():
                if kind != "labels":
                    print(f"  {kind}: {written}")
            for warning in result.warnings:
                print(f"  warning: {warning}")
    return 0
