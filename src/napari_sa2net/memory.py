"""The C heap during inference and training: keep freed activations for the next pass.

glibc hands memory blocks above its mmap threshold (and the free top of the heap above its trim
threshold) back to the system as soon as they are freed, so every forward pass on a CPU mapped
and faulted in its activations afresh: for the bundled model on 512² tiles a third of the time
went to the kernel (2 s of system time for 6 tiles) and a tile took 0.73 s instead of 0.53-0.65 s.
:func:`keep_freed_memory` raises both thresholds for the process (the peak does not grow: the
same blocks are reused) and its top pad. The engine runs in a thread other than the main one,
whose arena grows in heaps of at most 64 MB that glibc unmaps as soon as one is wholly free
unless the top pad covers it: without the pad every forward pass mapped and faulted heaps in
anew (9,000-16,000 page faults a 512² tile, 0.43-0.49 s instead of 0.36-0.37 s in the main
thread). Blocks larger than such a heap are always mapped afresh, which is why the model computes
its largest activation in bands (``napari_sa2net.model.sa2.MLP_BAND_BYTES``).
:func:`trim_if_above` hands free memory back after a chunk when the process holds more than
:data:`TRIM_ABOVE`, and :func:`release_memory` at the end of a run. Training keeps freed memory
too (``engine.train.train_job`` and ``engine.finetune.finetune_job``; :func:`freed_memory_kept`):
a CPU training step of the bundled recipe otherwise faulted in ~1.7 GB afresh (440,000 page
faults; whole `sa2net train` run 0.76 × the time with it, peak 3.25 GB against 2.92 GB). They
do nothing where the C library is not glibc.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Iterator

#: glibc's mallopt parameters.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: Blocks up to this size come from the heap and are kept after being freed.
KEEP_BYTES = 256 << 20
#: Free space kept at the top of a heap: a thread arena's wholly free heap (64 MB at most) stays.
KEEP_HEAP_PAD = 64 << 20


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Keep freed blocks up to :data:`KEEP_BYTES` in the process (True where it took effect)."""
    libc = _libc()
    if libc is None:
        return False
    kept = libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)
    kept = kept and libc.mallopt(M_TRIM_THRESHOLD, 2 * KEEP_BYTES)
    return bool(kept and libc.mallopt(M_TOP_PAD, KEEP_HEAP_PAD))


#: Above this resident size, freed heap memory is handed back after a chunk is stored.
TRIM_ABOVE = 1 << 30


def resident_bytes() -> int:
    """The process's resident set size (Linux; 0 where unknown)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def trim_if_above(limit: int = TRIM_ABOVE) -> bool:
    """:func:`release_memory` when the process holds more than ``limit`` bytes.

    With the raised thresholds, memory freed between chunks (accumulators, merged chunks) stays
    in the heap and the resident size creeps up; trimming once a chunk when above the limit
    keeps the peak bounded and costs a few page faults per chunk, not per forward pass.
    """
    if resident_bytes() <= limit:
        return False
    release_memory()
    return True


def release_memory() -> None:
    """Hand freed heap memory back to the system, after a run or a large transient peak."""
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(OSError):
            libc.malloc_trim(0)


@contextlib.contextmanager
def freed_memory_kept() -> Iterator[None]:
    """:func:`keep_freed_memory` for the block, :func:`release_memory` when it ends (also when a
    generator holding it is closed)."""
    keep_freed_memory()
    try:
        yield
    finally:
        release_memory()
