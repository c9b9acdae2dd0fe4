"""``sa2net export``: a model as a bioimage.io package that other tools run (and we read back)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a model as a bioimage.io package (.zip)",
        description=(
            "Write MODEL (a bundled name, a .pt checkpoint such as a finetuned one, or a "
            "package) as a bioimage.io model package (format 0.5): TorchScript and "
            "pytorch_state_dict weights, test tensors and a cover from a real image, a model "
            "card. QuPath, deepImageJ, ilastik and bioimageio.core run it; "
            "`sa2net segment --model PKG.zip` reads it back. Needs the optional dependency: "
            "pip install 'napari-sa2net[bioimageio]'."
        ),
    )
    parser.add_argument("model", help="bundled model name, checkpoint (.pt) or package (.zip)")
    parser.add_argument("--format", default="bioimageio", choices=["bioimageio"])
    parser.add_argument("--out", type=Path, required=True, help="the package to write (.zip)")
    parser.add_argument(
        "--test-image",
        type=Path,
        help="image the test tensors and cover come from (default: the bundled sample)",
    )
    parser.add_argument("--test-size", type=int, help="side of the test tensors (multiple of 16)")
    parser.add_argument("--halo", type=int, help="output halo in px (default: measured reach)")
    parser.add_argument(
        "--fixed-normalization",
        type=Path,
        metavar="IMAGE",
        help="store IMAGE's whole-image percentiles as fixed values (for consumers that "
        "normalize each tile separately) instead of per-sample percentiles",
    )
    parser.add_argument("--author", action="append", default=[], help="author (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing package")
    parser.add_argument(
        "--test",
        action="store_true",
        help="then run bioimageio.core's test on the package (as `bioimageio test PKG.zip`)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import export_job
    from ._bar import drive

    job = export_job(
        args.model,
        args.out,
        test_image=args.test_image,
        test_size=args.test_size,
        halo=args.halo,
        fixed_normalization=args.fixed_normalization,
        authors=tuple(args.author),
        overwrite=args.overwrite,
    )
    result = drive(job, quiet=args.quiet)
    print(
        f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, {result.seconds:.1f} s): "
        f"halo {result.halo} px, {result.normalization} normalization"
    )
    return test_package(result.path) if args.test else 0


def test_package(path: Path) -> int:
    """Run bioimageio.core's own test on ``path``; 0 when it passes, 1 (and its report) if not."""
    try:
        from bioimageio.core import test_model
    except ImportError as err:
        raise ValueError(
            f"--test needs bioimageio.core ({err}); pip install 'napari-sa2net[bioimageio]'"
        ) from err
    summary = test_model(path)
    print(f"bioimageio test {path}: {summary.status}")
    if summary.status == "passed":
        return 0
    summary.display()
    return 1
