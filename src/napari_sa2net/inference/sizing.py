"""Argument checks, automatic tile / overlap / batch sizes and the memory + time estimate.

The memory estimate of one forward pass is ``BYTES_PER_PIXEL_PER_WIDTH * width * tile²`` per
tile (fp32; half with bf16/fp16 autocast) — the full-resolution stages hold about two dozen
``width``-channel maps at once. The time estimate uses the multiply-accumulates per pixel of the
configuration (45.8 GMAC per 256² for width 64, scaling with width²) and a nominal device speed;
both are rough and printed as such. The overlap follows from the model's measured reach
(:func:`napari_sa2net.model.suggested_halo`), computed once per model object.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from typing import Any

from .settings import is_accelerator
from .tiling import ALIGN, overlap_for_halo

BYTES_PER_PIXEL_PER_WIDTH = 24 * 4
#: Multiply-accumulates per pixel of the width-64 (paper) network.
MACS_PER_PIXEL_W64 = 45.8e9 / 256**2
#: Nominal sustained multiply-accumulates per second, for the estimate only.
NOMINAL_MACS = {"cuda": 20e12, "mps": 2e12, "cpu": 40e9}
TILE_CHOICES = (1024, 768, 512, 384, 256)
#: On a CPU, the most activation memory one automatic forward pass may use. Larger passes gain
#: nothing there and every one of them maps and faults in fresh pages (kernel time): the bundled
#: model at 1024² × batch 2 ran at 0.19 MP/s against 0.33-0.34 at 512-1024² × batch 1, and a
#: 4096² run took 54 s with 512² tiles (21 s of it in the kernel) against 66 s with 768² (51 s).
#: Since the engine's thread keeps its pages: 656² tiles (overlap 144, stride 512, 13 % fewer
#: pixels through the network on 4096²) took the same time as 512² (3 alternated pairs, 53.8-57.4
#: s against 53.7-56.4 s; kernel 9 s against 3.5 s: a 48-channel map of 656² is over the thread
#: heap's 64 MB) and peaked at 1.30-1.49 GB against 1.10 GB.
CPU_PASS_BYTES = 1 << 29
#: Measured halo per model object, with the parameters' version counters it was measured at.
_HALO_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class Choice:
    tile: int
    overlap: int
    batch_size: int
    bytes_per_batch: int
    seconds_per_mpx: float

    def message(self, plan: Any, device: Any) -> str:
        mpx = plan.shape[0] * plan.shape[1] / 1e6
        return (
            f"{len(plan)} tiles of {self.tile}² (overlap {self.overlap}, batch {self.batch_size}) "
            f"on {device}; ~{self.bytes_per_batch / 2**30:.2f} GiB per batch, "
            f"~{mpx * self.seconds_per_mpx:.0f} s estimated for {mpx:.1f} MP"
        )


def _fingerprint(net: Any) -> str:
    """A digest of the weights, to tell whether a halo recorded in the metadata still holds."""
    import hashlib

    digest = hashlib.sha1()
    for tensor in net.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def model_halo(net: Any) -> int:
    """The model's suggested halo, measured once per model object and set of weights.

    Measuring costs a forward and backward pass (seconds and ~0.5 GB on a CPU), so the result is
    kept in ``net.metadata["halo"]`` with a digest of the weights: a checkpoint saved afterwards
    (the bundled model too) carries it and is never measured again. Finetuning or loading
    weights changes the parameters in place, which bumps their version counters and changes the
    digest, so the halo is measured again for the new weights.
    """
    from ..model import suggested_halo

    stamp = tuple(p._version for p in net.parameters())
    cached = _HALO_CACHE.get(net)
    if cached is None or cached[0] != stamp:
        fingerprint = _fingerprint(net)
        recorded = (getattr(net, "metadata", None) or {}).get("halo") or {}
        if recorded.get("weights") == fingerprint and isinstance(recorded.get("px"), int):
            halo = recorded["px"]
        else:
            from ..memory import release_memory
            from . import compute

            # on the thread that runs the model on a CPU (one OpenMP team, :mod:`.compute`)
            device = next(net.parameters()).device
            halo = compute.call_for(device, suggested_halo, net)
            release_memory()
            if isinstance(getattr(net, "metadata", None), dict):
                net.metadata["halo"] = {"px": int(halo), "weights": fingerprint}
        cached = (stamp, halo)
        _HALO_CACHE[net] = cached
    return cached[1]


def available_bytes(device: Any) -> int:
    """Free memory of the compute device (CUDA: free VRAM; else available RAM)."""
    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def default_chunk(device_type: str, tile: int, overlap: int) -> int:
    """Chunk edge of the dask pipeline when the caller gives none.

    A chunk's tiles are predicted as one group. On an accelerator, chunks of 4+ tiles a side
    fill the batches (1024² chunks of 512² tiles made batches of 4-9 on an H100). On a CPU
    (batch 1) small chunks cost nothing and a live preview fills in every 1024² (never below
    the tile, nor too thin for two overlaps). The edge is then rounded up to a multiple of the
    stride where that keeps the output's chunks large (:func:`aligned_chunk`).
    """
    if not is_accelerator(device_type):
        nominal = max(1024, tile, 2 * overlap + 2 * ALIGN)
    else:
        nominal = max(2048, 4 * tile)
    return max(aligned_chunk(nominal, tile - overlap), tile)


def aligned_chunk(nominal: int, stride: int) -> int:
    """The smallest multiple of ``stride`` from ``nominal`` to ``1.5 * nominal`` whose output
    chunks (:func:`.scratch.output_chunk`) are at least 512 px, or ``nominal`` if there is none.

    Every tile starts on a multiple of the stride (but the last of a row or column, at the
    image's edge), so on such chunks a chunk's tiles end at most one overlap past its far edges:
    the spills a chunk row leaves for the next are an overlap high instead of up to a tile.
    """
    from .scratch import output_chunk

    if stride <= 0:
        return nominal
    for chunk in range(-(-nominal // stride) * stride, 3 * nominal // 2 + 1, stride):
        if output_chunk(chunk) >= 512:
            return chunk
    return nominal


def tile_bytes(width: int, tile: int, amp: bool) -> int:
    return int(BYTES_PER_PIXEL_PER_WIDTH * width * tile * tile * (0.5 if amp else 1.0))


def choose(
    net: Any,
    shape: tuple[int, int],
    device: Any,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    amp: bool | None = None,
    extra_halo: int = 0,
) -> Choice:
    """Tile, overlap and batch size: the user's values, or automatic ones.

    An automatic overlap gives every blended pixel the model's halo plus ``extra_halo``
    pixels (the reach of the tiles' smoothing, :func:`.denoise.smoothing_reach`).
    """
    # Measuring the reach costs a forward and backward pass (seconds on a CPU for the larger
    # configurations), so it only happens when the overlap is automatic.
    if overlap is None:
        overlap = overlap_for_halo(model_halo(net) + extra_halo)
    use_amp = device.type == "cuda" and amp is not False
    width = net.config.width
    budget = available_bytes(device) // 2
    largest = -(-max(shape) // ALIGN) * ALIGN
    if tile is None:
        cap = budget if is_accelerator(device.type) else min(budget, CPU_PASS_BYTES)

        def within(tiles: list[int], limit: int) -> list[int]:
            return [t for t in tiles if tile_bytes(width, t, use_amp) <= limit]

        narrow = [t for t in TILE_CHOICES if t > overlap]
        wide = [t for t in narrow if t >= 3 * overlap]
        # Tiles under 3 overlaps spend most of each pass on context: they come last. On a CPU
        # the smallest wide tile within the whole budget beats a narrow one within the cap.
        fits = within(wide, cap) or within(wide[::-1], budget)[:1] or within(narrow, budget)
        tile = min(fits[0] if fits else max(256, 2 * overlap), max(largest, 2 * overlap + ALIGN))
        tile = -(-tile // ALIGN) * ALIGN
    if batch_size is None:
        limit = {"cuda": 16, "cpu": 1}.get(device.type, 2)
        batch_size = max(1, min(limit, budget // max(1, tile_bytes(width, tile, use_amp))))
    macs = MACS_PER_PIXEL_W64 * (width / 64) ** 2 * (tile / max(1, tile - overlap)) ** 2
    speed = NOMINAL_MACS.get(device.type, NOMINAL_MACS["cpu"])
    return Choice(
        tile,
        overlap,
        int(batch_size),
        batch_size * tile_bytes(width, tile, use_amp),
        macs * 1e6 / speed,
    )
