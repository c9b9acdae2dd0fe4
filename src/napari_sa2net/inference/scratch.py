"""Scratch arrays of one run: numpy in memory, or zarr on disk next to the output.

Zarr arrays are compressed with Blosc lz4 (fast; the maps are mostly constant) in chunks that
divide the pipeline's (at most :data:`SCRATCH_CHUNK`: a window a little larger than a pipeline
chunk then decompresses 1.5 chunks' worth, not 9), so tasks on different pipeline chunks never
write the same zarr chunk. An :class:`ArrayRef` travels to cluster workers as a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Quantization of the background probability in the ``landscape`` map.
LANDSCAPE_MAX = 65535
#: Fill values of the maps (chunks never written read as these).
FILL = {"objects": 0, "seeds": 0, "landscape": LANDSCAPE_MAX, "grown": 0, "labels": 0}
DTYPES = {"objects": np.uint32, "seeds": np.uint32, "landscape": np.uint16, "grown": np.uint32,
          "labels": np.uint32}  # fmt: skip


#: Largest zarr chunk edge of the scratch maps.
SCRATCH_CHUNK = 512


def divisor(chunk: int, largest: int) -> int:
    """The largest multiple of 16 ``<= largest`` that divides ``chunk`` (else ``chunk``)."""
    for parts in range(-(-chunk // largest), chunk // 16 + 1):
        if chunk % parts == 0 and (chunk // parts) % 16 == 0:
            return chunk // parts
    return chunk


class ArrayRef:
    """A scratch array by reference: a numpy array (threads) or a zarr path (any process)."""

    def __init__(self, array: Any, path: str | None = None) -> None:
        self._array, self.path = (None, path) if path is not None else (array, None)

    def open(self) -> Any:
        if self.path is None:
            return self._array
        from ..io._zarr_compat import open_for_writing

        return open_for_writing(self.path)

    def __getstate__(self) -> dict[str, Any]:
        if self.path is None:
            return self.__dict__
        return {"_array": None, "path": self.path}


class Scratch:
    """The scratch maps of one run: numpy arrays, or zarr arrays under ``folder``.

    Arrays are created on first use (:data:`DTYPES`, filled with :data:`FILL`) and referenced
    by name.
    """

    def __init__(self, shape: tuple[int, int], chunks: tuple[int, int], folder: Path | None):
        self.shape, self.chunks, self.folder = shape, chunks, folder
        self._refs: dict[str, ArrayRef] = {}

    @property
    def on_disk(self) -> bool:
        return self.folder is not None

    def create(self, name: str) -> ArrayRef:
        dtype, fill = DTYPES[name], FILL[name]
        if self.folder is None:
            ref = ArrayRef(np.full(self.shape, fill, dtype))
        else:
            from numcodecs import Blosc

            from ..io._zarr_compat import create_v2_array, create_v2_group

            group = create_v2_group(self.folder / name)
            chunks = tuple(
                min(divisor(c, SCRATCH_CHUNK), s) for c, s in zip(self.chunks, self.shape)
            )
            codec = Blosc(cname="lz4", clevel=1, shuffle=Blosc.SHUFFLE)
            create_v2_array(group, "0", shape=self.shape, chunks=chunks, dtype=dtype,
                            fill_value=fill, compressor=codec)  # fmt: skip
            ref = ArrayRef(None, str(self.folder / name / "0"))
        self._refs[name] = ref
        return ref

    def __getitem__(self, name: str) -> ArrayRef:
        return self._refs[name]

    def __contains__(self, name: str) -> bool:
        return name in self._refs
