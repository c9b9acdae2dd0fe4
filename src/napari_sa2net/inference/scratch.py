"""Scratch arrays of one run: numpy in memory, or compressed blocks on disk next to the output.

On disk each map is a :class:`BlockArray`: one file per pipeline chunk, the chunk's pixels
compressed with Blosc lz4 (fast; the maps are mostly constant), written whole by the task of that
chunk and read back by window. zarr did the same at ~2 ms of bookkeeping per zarr chunk, which
was most of the cost of the scratch (its lz4 coding of a 1024² uint32 chunk takes 1.4 ms); the
scratch is never seen by a user, so it needs none of zarr's generality. Blocks never written
read as the map's fill value.
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


#: Largest chunk edge of an output label store: pipeline chunks up to this are written as they
#: are (e.g. 1104 = 3 tile strides of 368), larger ones (an accelerator's) split evenly.
OUTPUT_CHUNK_MAX = 1536


def output_chunk(chunk: int) -> int:
    """Edge of the output store's chunks for pipeline chunks of ``chunk``: a divisor of it, so
    that each task writes whole store chunks."""
    return divisor(chunk, OUTPUT_CHUNK_MAX)


def divisor(chunk: int, largest: int) -> int:
    """The largest multiple of 16 ``<= largest`` that divides ``chunk`` (else ``chunk``)."""
    for parts in range(-(-chunk // largest), chunk // 16 + 1):
        if chunk % parts == 0 and (chunk // parts) % 16 == 0:
            return chunk // parts
    return chunk


class BlockArray:
    """A ``Y×X`` array stored as one compressed file per ``chunks`` block under ``folder``.

    Supports ``array[y0:y1, x0:x1]`` (reads the blocks a window touches) and whole-block
    assignment ``array[y0:y1, x0:x1] = block`` (``y0``, ``x0`` on the block grid; the block
    fills it to its end or the array's edge). Picklable: it is only a path and a shape.
    """

    def __init__(self, folder: Path, shape, chunks, dtype, fill) -> None:
        self.folder, self.shape, self.chunks = Path(folder), tuple(shape), tuple(chunks)
        self.dtype, self.fill = np.dtype(dtype), fill
        self.ndim = 2
        self.folder.mkdir(parents=True, exist_ok=True)

    def _codec(self) -> Any:
        from numcodecs import Blosc

        return Blosc(cname="lz4", clevel=1, shuffle=Blosc.SHUFFLE)

    def _file(self, i: int, j: int) -> Path:
        return self.folder / f"{i}.{j}"

    def _block_shape(self, i: int, j: int) -> tuple[int, int]:
        return (min(self.chunks[0], self.shape[0] - i * self.chunks[0]),
                min(self.chunks[1], self.shape[1] - j * self.chunks[1]))  # fmt: skip

    def __setitem__(self, key: tuple[slice, slice], value: np.ndarray) -> None:
        (ys, xs), value = key, np.asarray(value, self.dtype)
        i, j = ys.start // self.chunks[0], xs.start // self.chunks[1]
        if (ys.start % self.chunks[0] or xs.start % self.chunks[1]
                or value.shape != self._block_shape(i, j)):  # fmt: skip
            raise ValueError(f"scratch writes are whole blocks; got {key} of {value.shape}")
        self._file(i, j).write_bytes(self._codec().encode(np.ascontiguousarray(value)))

    def _block(self, i: int, j: int) -> np.ndarray:
        shape = self._block_shape(i, j)
        try:
            data = self._file(i, j).read_bytes()
        except FileNotFoundError:
            return np.full(shape, self.fill, self.dtype)
        return np.frombuffer(self._codec().decode(data), self.dtype).reshape(shape)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[0 : self.shape[0], 0 : self.shape[1]]
        return whole if dtype is None else whole.astype(dtype)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        (y0, y1, _), (x0, x1, _) = (k.indices(n) for k, n in zip(key, self.shape))
        out = np.empty((max(0, y1 - y0), max(0, x1 - x0)), self.dtype)
        ch, cw = self.chunks
        for i in range(y0 // ch, -(-y1 // ch)):
            for j in range(x0 // cw, -(-x1 // cw)):
                block = self._block(i, j)
                by0, bx0 = i * ch, j * cw
                sy = slice(max(y0, by0), min(y1, by0 + block.shape[0]))
                sx = slice(max(x0, bx0), min(x1, bx0 + block.shape[1]))
                out[sy.start - y0 : sy.stop - y0, sx.start - x0 : sx.stop - x0] = block[
                    sy.start - by0 : sy.stop - by0, sx.start - bx0 : sx.stop - bx0
                ]
        return out


class ArrayRef:
    """A scratch array by reference: numpy (threads), a :class:`BlockArray` or a zarr path."""

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
    """The scratch maps of one run: numpy arrays, or :class:`BlockArray` maps under ``folder``.

    Arrays are created on first use (:data:`DTYPES`, filled with :data:`FILL`) and referenced
    by name; blocks are the pipeline's chunks.
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
            array: Any = np.full(self.shape, fill, dtype)
        else:
            array = BlockArray(self.folder / name, self.shape, self.chunks, dtype, fill)
        self._refs[name] = ref = ArrayRef(array)
        return ref

    def __getitem__(self, name: str) -> ArrayRef:
        return self._refs[name]

    def __contains__(self, name: str) -> bool:
        return name in self._refs
