"""``segment_job`` / ``segment``: an image (array or file) in, instance labels out, tiled.

Small images (at most :data:`IN_MEMORY_MAX_PIXELS`) with no output path or a TIFF path are
predicted in memory; everything else runs through the chunked dask pipeline
(:mod:`.pipeline`) with scratch arrays next to the output, and the labels are written chunk by
chunk. The work runs in one background thread while the generator yields progress; closing the
generator (a cancel) stops the predictor at its next batch, removes the scratch folder and
leaves no output behind.
"""

from __future__ import annotations

import dataclasses
import queue
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import Job, Progress, run_job
from . import rescale, sizing

#: Images up to this many pixels are predicted in memory when no zarr output is asked for.
IN_MEMORY_MAX_PIXELS = 4096 * 4096
#: Without ``out``, larger images are refused (the labels alone would not fit comfortably).
RETURN_MAX_PIXELS = 8192 * 8192


@dataclass
class SegmentResult:
    """What :func:`segment_job` returns.

    Attributes
    ----------
    labels : numpy.ndarray or Path
        ``Y×X`` uint32 instance labels in memory, or the path they were written to.
    path : Path or None
        The written output (``.zarr`` or ``.tif``), ``None`` when kept in memory.
    n_objects : int
        Number of objects (ids are 1..n_objects).
    seconds : float
        Wall time of the whole job.
    device : str
        Compute device used.
    plan : dict
        Tile size, overlap, grid and chunking.
    provenance : dict
        Model name and hash, package version, tiling, thresholds, normalization statistics.
    """

    labels: Any
    path: Path | None
    n_objects: int
    seconds: float
    device: str
    plan: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.provenance


def segment(image: Any, **kwargs: Any) -> SegmentResult:
    """Run :func:`segment_job` to the end and return its :class:`SegmentResult`."""
    return run_job(segment_job(image, **kwargs))


def segment_job(
    image: Any,
    *,
    model: Any = None,
    channel: int | list[int] | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    amp: bool | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    scheduler: Any = None,
    skip_background: bool = True,
    interior_threshold: float = 0.5,
    foreground_threshold: float = 0.5,
    min_size: int | None = None,
    chunk: int | None = None,
    scale: float | None = None,
    diameter: float | None = None,
) -> Job[SegmentResult]:
    """Segment ``image`` into instance labels with tiled SA2-Net inference.

    Parameters
    ----------
    image : path, numpy.ndarray or dask.array.Array
        Anything :func:`napari_sa2net.io.open_image` reads (``YX``, ``YXC``, ``CYX``, files).
    model : str, path or SA2Net, optional
        Bundled model name, checkpoint path or a loaded model; default ``DEFAULT_MODEL``.
    channel : int or list of int, optional
        Channel(s) the model takes, in the image's channel order.
    tile, overlap, batch_size : int, optional
        Tile edge and overlap (multiples of 16) and tiles per forward pass; automatic from the
        model's reach and the free memory when ``None``.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    amp : bool, optional
        Autocast on CUDA (default on there).
    out : path, optional
        ``.zarr`` (OME-Zarr labels with a pyramid) or ``.tif``; ``None`` keeps the labels in
        memory (images up to :data:`RETURN_MAX_PIXELS`).
    overwrite : bool
        Replace an existing ``out``.
    scheduler : optional
        ``None`` (local threads), a ``dask.distributed`` address string or ``Client``.
    skip_background : bool
        Do not predict tiles whose normalized values span less than 0.02 (empty scan areas);
        they count as background.
    interior_threshold, foreground_threshold, min_size
        Post-processing (see :func:`.postprocess.probabilities_to_instances`).
    chunk : int, optional
        Chunk edge of the dask pipeline (default :func:`.sizing.default_chunk`: at least 1024
        and one tile on the CPU, 2048 and four tiles on an accelerator).
    scale : float, optional
        Resample the image by this factor before prediction (``> 1`` enlarges); the labels are
        resampled back, so they always match the input's grid.
    diameter : float, optional
        Typical object diameter in this image, in pixels: sets ``scale`` to the training
        objects' median diameter (stored in the checkpoint) divided by it.

    Yields
    ------
    Progress
        One level-0 event with the plan and the memory/time estimate, then ``"tile"`` events
        (level 1) after every batch, then ``"postprocess"`` / ``"write"`` events. On the
        chunked path some ``"tile"`` events carry a ``payload`` for a live preview: first a
        :class:`.runner.ProbabilityPreview` (the scratch probabilities), then one
        :class:`.runner.StoredChunk` per stored chunk.

    Returns
    -------
    SegmentResult
    """
    from ..model import DEFAULT_MODEL, resolve_device

    started = time.perf_counter()
    torch_device = resolve_device(device)
    net, model_info = sizing.resolve_model(DEFAULT_MODEL if model is None else model, torch_device)
    original = sizing.open_source(image, channel, net.in_channels)
    factor = rescale.scale_factor(scale, diameter, net.metadata)
    source = rescale.rescale_source(original, factor, chunk or 1024)
    job = _prepare(source, net, model_info, torch_device, locals())
    if factor != 1.0:
        job = dataclasses.replace(job, original=original, scale=factor)
    result = yield from _execute(job)
    result.seconds = time.perf_counter() - started
    result.provenance["seconds"] = round(result.seconds, 3)
    return result


def _prepare(source: Any, net: Any, model_info: dict, torch_device: Any, args: dict) -> Any:
    """Validate the arguments, size the tiles and build the run description."""
    from ..io.atomic import check_writable
    from .predictor import Predictor
    from .stitching import FLAT_RANGE, Chunking
    from .tiling import TilePlan

    height, width = source.shape[:2]
    out = None if args["out"] is None else Path(args["out"]).absolute()
    sizing.check_thresholds(args["interior_threshold"], args["foreground_threshold"])
    chunked = sizing.needs_pipeline(height * width, out, IN_MEMORY_MAX_PIXELS, RETURN_MAX_PIXELS)
    if out is not None:
        check_writable(out, args["overwrite"])
    choice = sizing.choose(net, (height, width), torch_device, args)
    plan = TilePlan((height, width), choice.tile, choice.overlap)
    chunk = args["chunk"] or sizing.default_chunk(torch_device.type, choice.tile, choice.overlap)
    chunking = Chunking.regular((height, width), chunk if chunked else max(height, width))
    stats = net.normalization.statistics(source.data)
    predictor = Predictor(net, torch_device, args["amp"], choice.batch_size)
    mode = "binary" if net.num_classes == 1 else "instance"
    return sizing.Run(
        source=source,
        net=net,
        model_info=model_info,
        plan=plan,
        chunking=chunking,
        stats=stats,
        predictor=predictor,
        mode=mode,
        out=out,
        chunked=chunked,
        choice=choice,
        flat_range=FLAT_RANGE if args["skip_background"] else None,
        args=args,
    )


def _execute(run: Any) -> Job[SegmentResult]:
    """Run the work in a thread, yielding its progress; clean up on cancel or failure."""
    from ..io.atomic import new_partial
    from .runner import work

    n_tiles = len(run.plan)
    yield Progress("segment", 0, 1, 0, run.choice.message(run.plan, run.predictor.device))
    events: queue.Queue = queue.Queue()
    done = {"tiles": 0}

    def on_batch(n: int) -> None:
        events.put(("tile", n))

    run.predictor.on_batch = on_batch
    # Named like every partial output (pid inside), so a killed run's scratch is found and
    # removed by io.atomic.remove_stale_partials (the batch job calls it).
    parent = Path(_scratch_parent(run.out) or tempfile.gettempdir())
    scratch = new_partial(parent / "sa2net-scratch")
    scratch.mkdir()
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=work, args=(run, scratch, events, outcome), daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, value = events.get(timeout=0.2)
            except queue.Empty:
                if not thread.is_alive():
                    break
                continue
            if kind == "tile":
                done["tiles"] += value
                yield Progress("tile", min(done["tiles"], n_tiles), n_tiles, 1, "predicting")
            elif kind in ("preview", "chunk"):
                # A tile event like the others (bars and the CLI see no new stage), carrying the
                # scratch probabilities / the chunk just stored for a live preview.
                current = min(done["tiles"], n_tiles)
                yield Progress("tile", current, n_tiles, 1, "predicting", payload=value)
            elif kind == "stage":
                yield Progress(value, 0, None, 1, value)
            elif kind == "end":
                break
        thread.join()
    except GeneratorExit:
        run.predictor.cancel_event.set()
        thread.join()
        if run.out is not None and outcome.get("written"):
            from ..io.atomic import remove_path

            remove_path(run.out)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _scratch_parent(out: Path | None) -> str | None:
    if out is None:
        return None
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    return str(parent)


def labels_of(result: SegmentResult) -> np.ndarray:
    """In-memory labels of a result (reads level 0 of a written output)."""
    if isinstance(result.labels, np.ndarray):
        return result.labels
    from ..io import read_labels

    data, _ = read_labels(result.path)
    return np.asarray(data)
