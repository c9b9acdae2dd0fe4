"""Small CSV tables (run summaries) written atomically, so a reader never sees half a table."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .atomic import atomic_path


def write_table(path: str | Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write ``rows`` under a header of ``columns`` as CSV, replacing ``path`` atomically.

    ``None`` cells are written empty.
    """
    path = Path(path)
    with atomic_path(path, overwrite=True) as partial, open(partial, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if value is None else value for value in row])
    return path


def read_table(path: str | Path) -> list[dict[str, str]]:
    """Rows of a CSV table as dictionaries by column; empty when the file is missing or broken."""
    try:
        with open(path, newline="") as table:
            return list(csv.DictReader(table))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []
