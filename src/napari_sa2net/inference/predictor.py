"""Predict: a batch of normalized ``YXC`` tiles in, class probabilities ``K×h×w`` out (torch).

The predictor owns the device side of tiled inference: ``torch.inference_mode``, autocast (bf16,
or fp16 where bf16 is unsupported) on CUDA, pinned host memory with non-blocking copies, and one
lock so that many reader threads (dask tasks) can prepare tiles while a single batch computes.
Probabilities are returned on the host as float32: the compute device is not the output device.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._progress import Cancelled


def pad_tiles(tiles: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Stack ``YXC`` tiles into an ``N×C×H×W`` float32 batch of spatial ``shape``.

    Shorter tiles (the last row/column of a plan) are padded at the bottom/right by reflection
    (replication where the tile is too small to reflect), as the network pads a whole image.
    """
    height, width = shape
    batch = np.empty((len(tiles), tiles[0].shape[-1], height, width), np.float32)
    for k, tile in enumerate(tiles):
        chw = np.moveaxis(np.asarray(tile, np.float32), -1, 0)
        pad_h, pad_w = height - chw.shape[1], width - chw.shape[2]
        if pad_h or pad_w:
            mode = "reflect" if pad_h < chw.shape[1] and pad_w < chw.shape[2] else "edge"
            chw = np.pad(chw, ((0, 0), (0, pad_h), (0, pad_w)), mode=mode)
        batch[k] = chw
    return batch


class Predictor:
    """Map batches of normalized tiles to probabilities with one model on one device.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits ``N×K×H×W`` for an ``N×C×H×W`` float input; put in eval mode here.
    device : torch.device or str
        Compute device; the model is moved there.
    amp : bool or None
        Autocast on CUDA (bf16 where supported, else fp16). ``None`` = on for CUDA, off on CPU.
    batch_size : int
        Tiles per forward pass.
    activation : {"auto", "none"}
        ``"auto"``: softmax over K for K > 1, sigmoid for K = 1. ``"none"``: logits as they are
        (tests use it with an identity model).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device | str = "cpu",
        amp: bool | None = None,
        batch_size: int = 4,
        activation: str = "auto",
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size!r} must be >= 1; use batch_size=1")
        if activation not in ("auto", "none"):
            raise ValueError(f"activation must be 'auto' or 'none', got {activation!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.amp = (self.device.type == "cuda") if amp is None else bool(amp)
        self.batch_size = int(batch_size)
        self.activation = activation
        self._lock = threading.Lock()
        self.cancel_event = threading.Event()
        self.on_batch: Callable[[int], Any] | None = None
        self._token = uuid.uuid4().hex  # survives pickling: one identity per predictor

    def __dask_tokenize__(self) -> tuple[str, str]:
        # Without this, dask hashes a task argument by pickling it: the whole model, copied
        # off the GPU, once per chunk (it cost ~1 s per chunk for sa2net-paper on an H100).
        return ("napari_sa2net.Predictor", self._token)

    @property
    def amp_dtype(self) -> torch.dtype | None:
        if not self.amp or self.device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def __getstate__(self) -> dict[str, Any]:
        # Locks and events do not pickle; a worker process gets fresh ones.
        state = self.__dict__.copy()
        state.update(_lock=None, cancel_event=None, on_batch=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self.cancel_event = threading.Event()

    def to_device(self, batch: np.ndarray) -> torch.Tensor:
        """Host ``N×C×H×W`` float32 batch to the device (pinned, non-blocking on CUDA)."""
        tensor = torch.from_numpy(np.ascontiguousarray(batch))
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def predict_batch(self, batch: np.ndarray, to_host: bool = True) -> Any:
        """Probabilities ``N×K×H×W`` float32 of a normalized ``N×C×H×W`` batch.

        A numpy array on the host, or with ``to_host=False`` a tensor left on the device: the
        computation is then only queued (asynchronous on CUDA) and the caller keeps working.
        """
        if self.cancel_event.is_set():
            raise Cancelled("inference was cancelled")
        with self._lock, torch.inference_mode():
            x = self.to_device(batch)
            dtype = self.amp_dtype
            if dtype is not None:
                with torch.autocast("cuda", dtype=dtype):
                    logits = self.model(x)
            else:
                logits = self.model(x)
            probs = self._activate(logits.float())
            out = probs.cpu().numpy() if to_host else probs
        if self.on_batch is not None:
            self.on_batch(len(batch))
        return out

    def _activate(self, logits: torch.Tensor) -> torch.Tensor:
        if self.activation == "none":
            return logits
        if logits.shape[1] == 1:
            return torch.sigmoid(logits)
        return F.softmax(logits, dim=1)
