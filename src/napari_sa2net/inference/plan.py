"""The typed plan of one segmentation run, decided before any pixel is predicted.

:func:`plan_run` turns validated :class:`.settings.SegmentSettings` and an image into a frozen
:class:`RunPlan`: the output is checked writable, the image opened lazily, the storage chosen,
the model loaded on its device, the image rescaled to the model's object size if asked, the
tiles, overlap, batch and chunks sized, the thresholds resolved and the cluster (if any)
connected. Checks run cheapest first, so a bad output path or image fails before the model
loads. The runner (:mod:`.runner`) executes a plan; nothing in it is looked up by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .maps import Thresholds
from .merger import Chunking
from .pipeline import Execution
from .settings import SegmentSettings, SettingError, Storage, storage_for
from .tiling import TilePlan


@dataclass(frozen=True)
class ModelInfo:
    """The model a run used: its name and the first digits of its file's SHA-256."""

    name: str
    hash: str | None


@dataclass(frozen=True)
class RunPlan:
    """Everything decided about a run before any pixel is read.

    Attributes
    ----------
    settings : SegmentSettings
        What the user asked for.
    source, original : napari_sa2net.io.ImageSource
        The image that is predicted (resampled when ``scale != 1``) and the image as given.
    scale : float
        Resampling factor of ``source`` against ``original``.
    net : SA2Net
        The model, in eval mode on ``device``.
    model : ModelInfo
        Its name and hash, for provenance.
    device : torch.device
        Compute device.
    tiles : TilePlan
        Tile size, overlap and grid on the prediction grid.
    chunking : Chunking
        Chunks of the pipeline.
    storage : {"memory", "disk"}
        Where the scratch maps live.
    out : Path or None
        The output, absolute.
    thresholds : Thresholds
        Mode and post-processing thresholds.
    batch_size : int
        Tiles per forward pass.
    amp : bool
        Autocast on CUDA.
    bytes_per_batch, seconds_per_mpx : float
        The memory and time estimate shown before the run.
    execution : Execution
        Local threads or a ``dask.distributed`` client.
    size : autosize.SizeEstimate or None
        The objects' size measured on a sample of the image (``diameter="auto"``).
    """

    settings: SegmentSettings
    source: Any
    original: Any
    scale: float
    net: Any
    model: ModelInfo
    device: Any
    tiles: TilePlan
    chunking: Chunking
    storage: Storage
    out: Path | None
    thresholds: Thresholds
    batch_size: int
    amp: bool
    bytes_per_batch: int
    seconds_per_mpx: float
    execution: Execution
    #: What ``diameter="auto"`` measured (``None`` when it was not asked for or not possible).
    size: Any = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the prediction grid."""
        return self.tiles.shape

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(Y, X)`` of the image as given."""
        return tuple(self.original.shape[:2])

    def message(self) -> str:
        """The plan and its estimate in one short line (the first progress event)."""
        mpx = self.shape[0] * self.shape[1] / 1e6
        where = "in memory" if self.storage == "memory" else "on disk"
        line = (
            f"{len(self.tiles)} tiles of {self.tiles.tile}² (overlap {self.tiles.overlap}) on "
            f"{self.device}, {self.chunking.chunk[0]}² chunks {where}; ~"
            f"{self.bytes_per_batch / 2**30:.2f} GiB a batch of {self.batch_size}, at most ~"
            f"{mpx * self.seconds_per_mpx:.0f} s for {mpx:.1f} MP"
        )
        return line if self.size is None else f"{line}; {self.size.message()}"


def resolve_model(model: Any, device: Any) -> tuple[Any, ModelInfo]:
    """A model in eval mode on ``device`` and its provenance (name, hash)."""
    from ..model import DEFAULT_MODEL, SA2Net, load_model, model_hash, resolve_checkpoint_path
    from . import compute

    model = DEFAULT_MODEL if model is None else model
    if isinstance(model, SA2Net):
        name = model.metadata.get("name") or model.config.name
        # A model loaded from a file (load_model sets checkpoint_path) keeps that file's hash.
        path = getattr(model, "checkpoint_path", None)
        digest = model.metadata.get("hash")
        if digest is None and path is not None and Path(path).is_file():
            digest = model_hash(path)
        return model.to(device).eval(), ModelInfo(str(name), digest)
    path = resolve_checkpoint_path(model)
    net = compute.call_for(device, load_model, path, device=device)  # where it will run
    return net, ModelInfo(str(model), model_hash(path))


def preload(settings: SegmentSettings) -> SegmentSettings:
    """``settings`` with the model loaded once, for several images (a batch, many inputs).

    The loaded model keeps the name and hash a run would record for the name or path, so every
    output's provenance is the same as for a single run.
    """
    from ..model import SA2Net, resolve_device

    if isinstance(settings.model, SA2Net):
        return settings
    net, info = resolve_model(settings.model, resolve_device(settings.device))
    net.metadata.update({"name": info.name, "hash": info.hash})
    return settings.replace(model=net)


def open_source(image: Any, channel: Any, plane: Any = None, axes: str | None = None) -> Any:
    """Open one plane of ``image`` lazily (``YXC`` dask data) with the chosen channel(s)."""
    from ..io import open_image

    channel = list(channel) if isinstance(channel, tuple) else channel
    if plane is None and axes is None:  # (an opened ImageSource takes neither)
        return open_image(image, channel=channel)
    return open_image(image, channel=channel, plane=plane, axes=axes)


def check_channels(source: Any, net: Any) -> None:
    channels = source.shape[2]
    if channels != net.in_channels:
        raise SettingError(
            "channel",
            None,
            f"must pick {net.in_channels} channel(s): the model takes {net.in_channels} but "
            f"the image has {channels} (shape {tuple(source.shape)})",
            0 if net.in_channels == 1 else list(range(net.in_channels)),
        )


def connect(scheduler: Any) -> Any:
    """A ``distributed.Client`` for ``scheduler`` (address or client), ``None`` for threads."""
    if scheduler is None or scheduler in ("threads", "sync", "synchronous"):
        return None
    if not isinstance(scheduler, str):
        return scheduler
    from distributed import Client

    try:
        return Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as err:  # worded with its fix by napari_sa2net.errors
        raise ConnectionError(f"{scheduler} did not answer within 10 s") from err


def local_workers() -> int:
    """Host threads for the scan, the writer and the instance stage: the usable cores."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def plan_plane(plan: RunPlan, original: Any) -> RunPlan:
    """The plan of another plane of the same stack: same model, tiles and chunks."""
    from dataclasses import replace

    from .rescale import rescale_source

    if tuple(original.shape) != tuple(plan.original.shape):
        raise ValueError(f"plane of shape {original.shape} in a stack of {plan.original.shape}")
    source = rescale_source(original, plan.scale, plan.settings.chunk or 1024)
    return replace(plan, source=source, original=original)


def plan_run(
    image: Any, settings: SegmentSettings, plane: Any = None, sample: Any = None
) -> RunPlan:
    """Check, open, load and size everything a run needs; see the module docstring.

    ``plane`` (``{"Z": 0}``) is the plane of a stack opened for planning (the first). With
    ``diameter="auto"``, ``sample`` (an :data:`.autosize.SegmentSample`, given by the stack
    runner that owns the engine) segments windows of that plane to measure the objects'
    size, and the scale is kept for every plane; without it the image is not rescaled.
    """
    from ..io.atomic import check_writable, remove_stale_partials
    from ..model import resolve_device
    from .autosize import AUTO, estimate_size
    from .denoise import smoothing_reach
    from .postprocess import auto_min_size
    from .rescale import rescale_source, scale_factor
    from .sizing import choose, default_chunk

    out = None if settings.out is None else settings.out.absolute()
    if out is not None:
        check_writable(out, settings.overwrite)
        remove_stale_partials(out.parent)  # a killed run's scratch and partial outputs
    original = open_source(image, settings.channel, plane, settings.axes)
    client = connect(settings.scheduler)
    pixels = original.shape[0] * original.shape[1]
    storage_for(pixels, settings, client is not None)  # refuses huge images without out early
    device = resolve_device(settings.device)
    net, info = resolve_model(settings.model, device)
    check_channels(original, net)
    size = None
    if settings.diameter == AUTO and settings.scale is None and sample is not None:
        size = estimate_size(original, net, settings, sample)
        factor = 1.0 if size is None else size.factor
    else:
        diameter = None if settings.diameter == AUTO else settings.diameter
        factor = scale_factor(settings.scale, diameter, net.metadata)
    source = rescale_source(original, factor, settings.chunk or 1024)
    shape = tuple(source.shape[:2])
    choice = choose(net, shape, device, tile=settings.tile, overlap=settings.overlap,
                    batch_size=settings.batch_size, amp=settings.amp,
                    extra_halo=smoothing_reach(settings.denoise))  # fmt: skip
    tiles = TilePlan(shape, choice.tile, choice.overlap)
    chunk = settings.chunk or default_chunk(device.type, choice.tile, choice.overlap)
    # A tile may spill into the next chunk only, never over it: chunks hold a whole tile.
    longest = max(min(choice.tile, n) for n in shape)
    chunk = max(chunk, -(-longest // 16) * 16)
    mode = "binary" if net.num_classes == 1 else "instance"
    # Size filter on the grid the model sees: from the measured objects when there are some.
    measured = None if size is None or size.diameter is None else size.diameter * factor
    min_size = auto_min_size(net.metadata, settings.min_size, measured)
    return RunPlan(
        settings=settings,
        source=source,
        original=original,
        scale=factor,
        net=net,
        model=info,
        device=device,
        tiles=tiles,
        chunking=Chunking.regular(shape, chunk),
        storage=storage_for(shape[0] * shape[1], settings, client is not None),
        out=out,
        thresholds=Thresholds(
            mode,
            settings.interior_threshold,
            settings.foreground_threshold,
            min_size,
            seeds="centre" if getattr(net, "centre", False) else "interior",
        ),
        batch_size=choice.batch_size,
        amp=device.type == "cuda" and settings.amp is not False,
        bytes_per_batch=choice.bytes_per_batch,
        seconds_per_mpx=choice.seconds_per_mpx,
        execution=Execution(client, local_workers(), owned=isinstance(settings.scheduler, str)),
        size=size,
    )
