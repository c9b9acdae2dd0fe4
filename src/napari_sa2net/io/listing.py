"""Find the image files of a folder by glob patterns (inputs of batch runs)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from pathlib import Path


def _candidates(folder: Path, pattern: str, recursive: bool) -> Iterator[Path]:
    if "/" in pattern:  # a path pattern: pathlib's (case-sensitive) glob
        yield from folder.rglob(pattern) if recursive else folder.glob(pattern)
        return
    pattern = pattern.lower()  # a name pattern: "*.tif" also finds "A.TIF" from Windows tools
    for path in folder.rglob("*") if recursive else folder.iterdir():
        if fnmatch.fnmatchcase(path.name.lower(), pattern):
            yield path


def find_files(
    folder: str | Path, patterns: str | Sequence[str], recursive: bool = False
) -> list[Path]:
    """Files and ``.zarr`` stores in ``folder`` matching any of the glob ``patterns``, sorted.

    Name patterns (without ``/``) match case-insensitively. Hidden names (``.x``, such as
    partial outputs being written) are ignored, and so is everything inside a ``.zarr`` store;
    ``recursive`` also searches subfolders.
    """
    folder = Path(folder)
    patterns = (patterns,) if isinstance(patterns, str) else tuple(patterns)
    found: set[Path] = set()
    for pattern in patterns:
        for path in _candidates(folder, pattern, recursive):
            parts = path.relative_to(folder).parts
            inside_zarr = any(p.lower().endswith(".zarr") for p in parts[:-1])
            if inside_zarr or any(p.startswith(".") for p in parts):
                continue
            if path.is_file() or path.suffix.lower() == ".zarr":
                found.add(path)
    return sorted(found)
