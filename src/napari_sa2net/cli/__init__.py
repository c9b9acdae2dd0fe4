"""The ``sa2net`` command: each subcommand lives in its own module of this package.

A subcommand module defines ``add_parser(subparsers)``, which registers its parser and sets
``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Subcommand modules, in the order ``sa2net --help`` lists them.
SUBCOMMANDS: tuple[str, ...] = ("info", "train", "evaluate", "batch", "segment", "export", "demo")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="sa2net",
        description="SA2-Net segmentation for microscopy: train, evaluate and segment.",
    )
    parser.add_argument("--version", action="version", version=f"napari-sa2net {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sa2net`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"sa2net {args.command}: cancelled", file=sys.stderr)
        return 130
    except Exception as err:
        from ..errors import user_message

        message = user_message(err)
        if message is None:
            raise  # a bug: the traceback is what a report needs
        # An error the user can fix: one line naming the problem and the fix, no traceback.
        print(f"sa2net {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
