"""``sa2net info``: configurations, bundled models and compute devices."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info", help="list model configurations, bundled models and usable devices"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import __version__

    print(f"napari-sa2net {__version__}")
    try:
        from ..model import CONFIGS, available_devices, list_bundled_models
    except ImportError as err:  # the model floor is not importable (torch missing)
        print(f"model support unavailable: {err}")
        return 1
    print("\nconfigurations:")
    for name, cfg in CONFIGS.items():
        print(f"  {name:<16} width {cfg.width}")
    print("\nbundled models:")
    bundled = list_bundled_models()
    for name in bundled:
        print(f"  {name}")
    if not bundled:
        print("  (none)")
    print("\ndevices:")
    for device, description in available_devices():
        print(f"  {device:<8} {description}")
    return 0
