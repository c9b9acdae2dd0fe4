"""``sa2net batch``: segment every image of a folder, resumable, with a summary CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._settings_args import add_settings_arguments, flag_errors, settings_from_args


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="segment every image of a folder (resumable; bad files are skipped and reported)",
        description=(
            "Segment each image of INPUT_DIR into OUT/<stem>.tif or OUT/<stem>.zarr, written "
            "atomically, and keep OUT/sa2net-summary.csv (file, status, objects, mean_area_px, "
            "seconds, error, diameter_px, scale) up to date after every file. Rerunning skips "
            "finished files and redoes an interrupted one. Exit status 1 when some file failed."
        ),
    )
    parser.add_argument("input_dir", type=Path, metavar="INPUT_DIR", help="folder of images")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--pattern",
        action="append",
        help="glob pattern of the inputs, repeatable (default: *.tif and *.tiff)",
    )
    parser.add_argument("--recursive", action="store_true", help="also search subfolders")
    parser.add_argument(
        "--format",
        choices=("auto", "tif", "zarr"),
        default="auto",
        help="label TIFF, OME-Zarr pyramid, or auto (OME-Zarr above 4096² pixels)",
    )
    parser.add_argument("--overwrite", action="store_true", help="redo and replace outputs")
    parser.add_argument(
        "--no-resume", dest="resume", action="store_false", help="do not skip finished files"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inference.batch import DEFAULT_PATTERNS, batch_job
    from ._bar import drive

    settings = settings_from_args(args)
    with flag_errors():
        job = batch_job(
            args.input_dir,
            args.out,
            settings,
            patterns=args.pattern or DEFAULT_PATTERNS,
            recursive=args.recursive,
            output_format=args.format,
            resume=args.resume,
            overwrite=args.overwrite,
        )
        result = drive(job, quiet=args.quiet)
    for record in result.files:
        if record.status == "failed":
            print(f"failed: {record.file}: {record.error}")
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts.items()))
    print(f"{counts}; summary: {result.summary_path}")
    return 1 if result.counts.get("failed") else 0
