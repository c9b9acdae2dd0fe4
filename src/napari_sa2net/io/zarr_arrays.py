"""Reading zarr arrays safely: no codec that runs code, and damaged chunks named as such.

A zarr array may declare the ``pickle`` codec (object arrays): decoding such a chunk unpickles
bytes from the file, which can run any code (zarr 2 does it; zarr 3 refuses the metadata).
:func:`refuse_code_codecs` reads the array's raw JSON metadata first and refuses it, whatever
the zarr version. :class:`CheckedZarrArray` wraps a zarr array for ``dask.array.from_array`` so a
chunk that cannot be decoded is a ``ValueError`` naming the store, not a bare codec error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import one_line

_METADATA_FILES = (".zarray", "zarr.json")
#: Codec names whose decoding runs code from the file.
_CODE_CODECS = ("pickle",)


def _names(node: Any) -> Iterator[str]:
    """Every ``"id"`` / ``"name"`` string in a JSON document (codec names among them)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("id", "name") and isinstance(value, str):
                yield value
            else:
                yield from _names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _names(value)


def refuse_code_codecs(array_dir: Path, store: Path) -> None:
    """Raise ``ValueError`` when the array in ``array_dir`` holds pickled Python objects.

    ``store`` is the path the user gave (named in the message). Metadata that cannot be read
    is left to zarr, which reports it.
    """
    for name in _METADATA_FILES:
        try:
            meta = json.loads((array_dir / name).read_text())
        except (OSError, ValueError):
            continue
        dtype = meta.get("dtype", meta.get("data_type")) if isinstance(meta, dict) else None
        codecs = [n for n in _names(meta) if any(c in n.lower() for c in _CODE_CODECS)]
        if codecs or dtype in ("|O", "object"):
            raise ValueError(
                f"{store} stores Python objects ({', '.join(codecs) or 'dtype object'}), which "
                "would run code from the file when read; it was refused and nothing ran: "
                "save the image as a numeric zarr array"
            )


def damaged(store: Path, err: object) -> ValueError:
    """The error for zarr metadata or a chunk that cannot be read or decoded."""
    return ValueError(
        f"cannot read {store}: {one_line(err)[:200]}; the store is damaged or incomplete: "
        "copy or write it again"
    )


class CheckedZarrArray:
    """A zarr array for ``dask.array.from_array`` whose read errors name the store.

    Parameters
    ----------
    array : zarr.Array
        The opened array (it pickles: it holds its store's path).
    store : Path
        The path the user gave, for messages.
    """

    def __init__(self, array: Any, store: Path) -> None:
        self.array, self.store = array, Path(store)
        self.shape: tuple[int, ...] = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.chunks: tuple[int, ...] = tuple(array.chunks)

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self.array[key])
        except MemoryError:
            raise
        except Exception as err:  # zarr, numcodecs and the store raise many types
            raise damaged(self.store, err) from err
