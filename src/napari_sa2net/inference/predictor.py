"""Predict: a batch of raw ``YXC`` tiles in, class probabilities ``N×K×H×W`` out.

A predictor owns everything on the model's side of tiled inference: the model and its device,
autocast, the normalization statistics of the slide and the number of maps it returns. The tiler
and the merger only hand it raw tiles and blend what it returns, so a predictor can be replaced
alone:

- :class:`Predictor` runs a torch model (``torch.inference_mode``; bf16 / fp16 autocast on
  CUDA; pinned host memory and non-blocking copies; one lock, so reader threads prepare tiles
  while a single batch computes),
- :class:`ZeroCostPredictor` derives probabilities from the normalized intensity with a few
  array operations (benchmarks of the host pipeline, tests).

Both implement :class:`TilePredictor`. Probabilities come back on the host as float32 unless a
caller asks to keep them on the device (the compute device is not the output device).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from .._progress import Cancelled
from ..normalization import Normalization
from .denoise import smooth_batch
from .settings import TTA_CHOICES

Stats = tuple[np.ndarray, np.ndarray]


def _flip(dims: tuple[int, ...]):
    return lambda t: t.flip(dims)


def _turn(k: int):
    return lambda t: t.rot90(k, (2, 3))


#: (forward, inverse) pairs on ``N×C×H×W`` tensors: identity, flips, then rotations and the
#: transposes; the first 2 / 4 / 8 are used (square tiles: rotations keep the shape).
TRANSFORMS = (
    (lambda t: t, lambda t: t),
    (_flip((3,)), _flip((3,))),
    (_flip((2,)), _flip((2,))),
    (_flip((2, 3)), _flip((2, 3))),
    (_turn(1), _turn(-1)),
    (_turn(-1), _turn(1)),
    (lambda t: t.transpose(2, 3), lambda t: t.transpose(2, 3)),
    (lambda t: t.flip((2, 3)).transpose(2, 3), lambda t: t.transpose(2, 3).flip((2, 3))),
)


class TilePredictor(Protocol):
    """What the pipeline needs from a predictor."""

    #: Probability maps per pixel (the model's classes, and its centre map if it has one).
    num_maps: int
    batch_size: int
    #: Groups of tiles the pipeline may run at once (1: one device, or a CPU that torch fills).
    concurrency: int
    cancel_event: threading.Event
    on_batch: Callable[[int], Any] | None

    @property
    def device_type(self) -> str: ...

    def predict(self, tiles: Sequence[np.ndarray], shape: tuple[int, int], to_host: bool = True):
        """``N×K×H×W`` probabilities of raw ``YXC`` tiles padded to ``shape``."""


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


class _Base:
    """Normalization, cancel, progress callback and a cheap dask token, shared by predictors."""

    def __init__(self, num_maps: int, batch_size: int, stats: Stats | None) -> None:
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size!r} must be >= 1; use batch_size=1")
        self.num_maps = int(num_maps)
        self.batch_size = int(batch_size)
        self.stats = stats
        self.cancel_event = threading.Event()
        self.on_batch: Callable[[int], Any] | None = None
        self._token = uuid.uuid4().hex  # survives pickling: one identity per predictor

    def __dask_tokenize__(self) -> tuple[str, str]:
        # Without this, dask hashes a task argument by pickling it: the whole model, copied
        # off the GPU, once per chunk (it cost ~1 s per chunk for sa2net-paper on an H100).
        return (type(self).__name__, self._token)

    def __getstate__(self) -> dict[str, Any]:
        # Locks and events do not pickle; a worker process gets fresh ones.
        state = self.__dict__.copy()
        state.update(_lock=None, cancel_event=None, on_batch=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self.cancel_event = threading.Event()

    def prepare(self, tiles: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
        """Normalize (with the slide's statistics) and pad raw tiles into an ``N×C×H×W`` batch."""
        if self.stats is not None:
            tiles = [Normalization.apply(t, *self.stats) for t in tiles]
        return pad_tiles(tiles, shape)

    def _check(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled("inference was cancelled")

    def _done(self, n: int) -> None:
        if self.on_batch is not None:
            self.on_batch(n)


class Predictor(_Base):
    """Map batches of tiles to probabilities with one torch model on one device.

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
        ``"auto"``: the model's own ``probabilities`` (an :class:`SA2Net`: softmax over the
        classes, sigmoid of the centre map), else softmax over K for K > 1, sigmoid for K = 1.
        ``"none"``: logits as they are (tests use it with an identity model).
    stats : tuple of np.ndarray, optional
        Per-channel normalization ``(low, high)`` of the slide; ``None`` feeds tiles as they are.
    tta : int
        Test-time augmentation: average the probabilities of the first ``tta`` of the 8
        flips / rotations by 90° of each tile (:data:`TTA_CHOICES`; ``tta`` times the compute).
    smooth : float, optional
        Gaussian ``sigma`` (pixels) applied to each normalized tile before the model
        (:mod:`.denoise`); ``None``: none.
    """

    concurrency = 1

    def __init__(
        self,
        model: Any,
        device: Any = "cpu",
        amp: bool | None = None,
        batch_size: int = 4,
        activation: str = "auto",
        stats: Stats | None = None,
        tta: int = 1,
        smooth: float | None = None,
    ) -> None:
        import torch

        from ..model.devices import use_fast_layout

        if activation not in ("auto", "none"):
            raise ValueError(f"activation must be 'auto' or 'none', got {activation!r}")
        if tta not in TTA_CHOICES:
            raise ValueError(f"tta={tta!r} must be one of {TTA_CHOICES}; use tta=1 (off)")
        self.tta = int(tta)
        self.smooth = None if not smooth else float(smooth)
        maps = getattr(model, "num_outputs", None) or getattr(model, "num_classes", None) or 1
        super().__init__(maps, batch_size, stats)
        self.device = torch.device(device)
        self.model = use_fast_layout(model.to(self.device).eval(), self.device)
        self.amp = (self.device.type == "cuda") if amp is None else bool(amp)
        self.activation = activation
        self._lock = threading.Lock()

    @property
    def device_type(self) -> str:
        return self.device.type

    @property
    def amp_dtype(self) -> Any:
        import torch

        if not self.amp or self.device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def to_device(self, batch: np.ndarray) -> Any:
        """Host ``N×C×H×W`` float32 batch to the device (pinned, non-blocking on CUDA)."""
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(batch))
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def predict(self, tiles: Sequence[np.ndarray], shape: tuple[int, int], to_host: bool = True):
        """Probabilities ``N×K×H×W`` of raw ``YXC`` tiles (normalized and padded here)."""
        self._check()
        return self.predict_batch(self.prepare(tiles, shape), to_host)

    def predict_batch(self, batch: np.ndarray, to_host: bool = True) -> Any:
        """Probabilities ``N×K×H×W`` float32 of a normalized ``N×C×H×W`` batch.

        A numpy array on the host, or with ``to_host=False`` a tensor left on the device: the
        computation is then only queued (asynchronous on CUDA) and the caller keeps working.
        """
        import torch

        self._check()
        with self._lock, torch.inference_mode():
            x = self.to_device(batch)
            if self.smooth:
                x = smooth_batch(x, self.smooth)
            probs = None
            for forward, back in TRANSFORMS[: self.tta]:  # test-time augmentation
                p = back(self._activate(self._forward(forward(x)).float()))
                probs = p if probs is None else probs.add_(p)
            if self.tta > 1:
                probs /= self.tta
            out = probs.cpu().contiguous().numpy() if to_host else probs.contiguous()
        self._done(len(batch))
        return out

    def _forward(self, x: Any) -> Any:
        dtype = self.amp_dtype
        if dtype is None:
            return self.model(x)
        import torch

        with torch.autocast("cuda", dtype=dtype):
            return self.model(x)

    def _activate(self, logits: Any) -> Any:
        import torch

        if self.activation == "none":
            return logits
        if hasattr(self.model, "probabilities"):
            return self.model.probabilities(logits)
        if logits.shape[1] == 1:
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=1)


class ZeroCostPredictor(_Base):
    """Probabilities from the normalized intensity alone: no network, a few array operations.

    Bright pixels are foreground (a ramp from 0.2 to 0.5 of the normalized range), brighter ones
    interior (0.35 to 0.65), so nuclei on a dark background come out as objects with seeds and
    the post-processing downstream does its full work. Runs on the host in any number of threads
    at once (``concurrency``); used to measure what the host pipeline costs without a model.
    """

    device_type = "host"

    def __init__(
        self,
        num_classes: int = 3,
        batch_size: int = 4,
        stats: Stats | None = None,
        concurrency: int = 1,
    ) -> None:
        if num_classes not in (1, 3):
            raise ValueError(f"num_classes={num_classes} must be 1 (binary) or 3 (instance)")
        super().__init__(num_classes, batch_size, stats)
        self.concurrency = max(1, int(concurrency))

    def predict(self, tiles: Sequence[np.ndarray], shape: tuple[int, int], to_host: bool = True):
        self._check()
        batch = self.prepare(tiles, shape)
        x = batch[:, 0] if batch.shape[1] == 1 else batch.mean(axis=1)
        out = np.empty((len(batch), self.num_maps, *shape), np.float32)
        foreground = out[:, -1]  # the ramps are computed in place in the output
        np.subtract(x, 0.2, out=foreground)
        foreground *= 1 / 0.3
        np.clip(foreground, 0.0, 1.0, out=foreground)
        if self.num_maps == 3:
            interior = out[:, 1]
            np.subtract(x, 0.35, out=interior)
            interior *= 1 / 0.3
            np.clip(interior, 0.0, 1.0, out=interior)
            interior *= foreground
            np.subtract(1.0, foreground, out=out[:, 0])
            foreground -= interior  # the last plane becomes the boundary
        self._done(len(tiles))
        return out
