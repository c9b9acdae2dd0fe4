"""Execute a :class:`.plan.RunPlan`: scan → predict → instances → write, in a worker thread.

:func:`run_plan` is a job generator: the work runs in one background thread and reports
:class:`~napari_sa2net._progress.Progress` events through a queue that the generator yields
from, so the caller (CLI bar, napari worker) never blocks on the work. Closing the generator
(a cancel) or an interrupt (Ctrl-C) stops the work at its next batch of tiles or tasks, waits for
the thread to end, deletes the scratch and leaves no output behind. Events, all at level 1:

- ``"scan"`` (chunks read), then one ``"tile"`` event whose ``payload`` is a
  :class:`.results.BackgroundMap` (when background skipping is on);
- ``"tile"`` after every batch (counting the tiles that are predicted); on the disk path the
  first carries a :class:`.results.ClassPreview` and then one per stored chunk a
  :class:`.results.StoredChunk` with the chunk's classes;
- ``"grow"`` / ``"label"`` (chunks of the instance stage), ``"write"``.
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._progress import Cancelled, Job, Progress
from .instances import instances
from .maps import MapSink
from .memory import keep_freed_memory, release_memory, trim_if_above
from .pipeline import predict_chunks
from .plan import RunPlan
from .results import BackgroundMap, ClassPreview, SegmentResult, StoredChunk, TilingSummary
from .scan import Scan, scan
from .scratch import ArrayRef, Scratch

#: Tasks of the instance stage computed between two progress events (and cancel checks).
TASK_BATCH = 8
#: Makes a tile predictor from the slide's normalization statistics.
MakePredictor = Callable[[tuple[np.ndarray, np.ndarray]], Any]


class Reporter:
    """Posts progress to the job's queue and stops the work when the job is cancelled."""

    def __init__(self, events: queue.Queue, cancel: threading.Event) -> None:
        self.events, self.cancel = events, cancel
        self.tiles_done, self.tiles_total = 0, 0

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("segmentation was cancelled")

    def post(self, stage: str, current: int, total: int | None, message: str = "", payload=None):
        self.events.put(Progress(stage, current, total, 1, message, payload=payload))

    def on_batch(self, n: int) -> None:
        self.tiles_done += n
        self.post("tile", min(self.tiles_done, self.tiles_total), self.tiles_total, "predicting")

    def payload(self, value: Any) -> None:
        """A ``"tile"`` event like the others (bars see no new stage) carrying ``value``."""
        done = min(self.tiles_done, self.tiles_total)
        self.post("tile", done, self.tiles_total, "predicting", payload=value)

    def run_tasks(self, execution: Any):
        def run(stage: str, tasks: list[Any]) -> list[Any]:
            results: list[Any] = []
            step = max(TASK_BATCH, 2 * execution.workers)
            for start in range(0, len(tasks), step):
                self.check()
                results.extend(execution.compute(tasks[start : start + step]))
                self.post(stage, len(results), len(tasks), stage)
            return results

        return run


def run_plan(plan: RunPlan, predictor: MakePredictor | None = None) -> Job[SegmentResult]:
    """Run ``plan`` in a worker thread, yielding its progress; see the module docstring.

    ``predictor(stats)``, if given, makes the :class:`~.predictor.TilePredictor` from the
    slide's normalization statistics instead of the plan's model (a zero-cost predictor to
    measure the host pipeline, another model format).
    """
    started = time.perf_counter()
    yield Progress("segment", 0, 1, 0, plan.message())
    events: queue.Queue = queue.Queue()
    cancel = threading.Event()
    outcome: dict[str, Any] = {}
    scratch = _scratch_folder(plan)
    thread = threading.Thread(
        target=_work, args=(plan, scratch, Reporter(events, cancel), outcome, predictor),
        daemon=True,
    )  # fmt: skip
    thread.start()
    try:
        while thread.is_alive() or not events.empty():
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            yield event
    except BaseException:  # closed (cancel), Ctrl-C, or the consumer failed: stop, then clean
        cancel.set()
        raise
    finally:
        if thread.is_alive():
            cancel.set()
        thread.join()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        client = plan.execution.client
        if client is not None:
            from .workers import release

            with contextlib.suppress(Exception):  # a failed cluster must not hide the error
                release(client)
            if plan.execution.owned:
                client.close()
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    result.seconds = time.perf_counter() - started
    result.provenance["seconds"] = round(result.seconds, 3)
    return result


def _scratch_folder(plan: RunPlan) -> Path | None:
    """A hidden folder next to the output (named like a partial, so a killed run's is found)."""
    if plan.storage == "memory":
        return None
    from ..io.atomic import new_partial, remove_stale_partials

    parent = plan.out.parent if plan.out is not None else Path(tempfile.gettempdir())
    if plan.out is None:  # (the output's folder was cleaned when the run was planned)
        remove_stale_partials(parent)  # scratch of killed runs, named like partials
    folder = new_partial(parent / "sa2net-scratch")
    folder.mkdir(parents=True)
    return folder


def _work(plan: RunPlan, scratch: Path | None, report: Reporter, outcome: dict, make) -> None:
    keep_freed_memory()  # forward passes reuse their activations' pages (no refaulting)
    try:
        outcome["result"] = _segment(plan, scratch, report, make)
    except BaseException as err:  # handed to the generator, which re-raises it
        outcome["error"] = err
    finally:
        release_memory()


def _scan(plan: RunPlan, report: Reporter) -> Scan:
    def progress(done: int, total: int) -> None:
        report.check()
        report.post("scan", done, total, "reading the image")

    scheduler = plan.execution.client or ("threads" if plan.execution.workers > 1 else "sync")
    return scan(plan.source.data, plan.tiles, plan.net.normalization,
                plan.settings.skip_background, scheduler, progress)  # fmt: skip


def _predictor(plan: RunPlan, found: Scan, report: Reporter, make: Any = None) -> Any:
    from .predictor import Predictor

    if make is not None:
        predictor = make(found.stats)
    else:
        predictor = Predictor(plan.net, plan.device, plan.amp, plan.batch_size,
                              stats=found.stats, tta=plan.settings.tta)  # fmt: skip
    predictor.cancel_event = report.cancel
    predictor.on_batch = report.on_batch
    client = plan.execution.client
    if client is None:
        return predictor
    from .workers import share_cores

    share_cores(client)
    return client.scatter(predictor, broadcast=True, hash=False)  # the model travels once


def _segment(plan: RunPlan, folder: Path | None, report: Reporter, make) -> SegmentResult:
    found = _scan(plan, report)
    report.tiles_total = len(plan.tiles) - len(found.skip)
    if found.covered is not None:
        report.payload(BackgroundMap(~found.covered, found.cell, plan.shape, plan.image_shape,
                                     len(found.skip), len(plan.tiles)))  # fmt: skip
    predictor = _predictor(plan, found, report, make)
    scratch = Scratch(plan.shape, plan.chunking.chunk, folder)
    sink = MapSink(scratch, plan.thresholds)
    on_chunk = None
    if scratch.on_disk:
        preview = ClassPreview(plan.thresholds.mode, plan.shape, plan.image_shape)
        report.payload(preview)

        def on_chunk(bounds: tuple[int, ...], classes: np.ndarray) -> None:
            report.payload(StoredChunk(tuple(int(b) for b in bounds), classes, preview))

    def store(bounds: tuple[int, ...], probs: np.ndarray) -> np.ndarray:
        classes = sink.put(bounds, probs)
        trim_if_above()  # freed accumulators and maps back to the system, not kept
        return classes

    predict_chunks(plan.source.data, plan.tiles, plan.chunking, predictor, found.skip,
                   store, plan.execution, on_chunk)  # fmt: skip
    report.check()
    summary = TilingSummary(plan.tiles.tile, plan.tiles.overlap, plan.batch_size,
                            plan.tiles.grid, plan.chunking.chunk, plan.storage,
                            report.tiles_total, len(found.skip))  # fmt: skip
    store = _label_store(plan)
    try:
        target = ArrayRef(None, str(store.partial / "0")) if store else scratch.create("labels")
        numbering, warnings = instances(plan.chunking, sink, target,
                                        report.run_tasks(plan.execution))  # fmt: skip
        report.check()
        report.post("write", 0, None, "write")
        labels, area = _restore(plan, target, numbering.area)
        provenance = _provenance(plan, found, numbering.count, warnings)
        provenance["tiling"] = summary.to_dict()
        path = _write(plan, store, labels, provenance)
    except BaseException:
        if store is not None:
            store.abort()
        raise
    return SegmentResult(
        path if path is not None else np.asarray(labels),
        path,
        numbering.count,
        0.0,
        str(plan.device),
        summary,
        provenance,
        area,
        warnings,
    )


def _label_store(plan: RunPlan) -> Any:
    """The OME-Zarr store the instance stage writes into directly (zarr output, no rescale)."""
    if plan.out is None or plan.out.suffix.lower() != ".zarr" or plan.scale != 1.0:
        return None
    from ..io import create_label_store
    from .scratch import divisor

    chunks = tuple(divisor(c, 1024) for c in plan.chunking.chunk)  # tasks write whole chunks
    return create_label_store(plan.out, plan.shape, chunks, overwrite=plan.settings.overwrite)


def _restore(plan: RunPlan, target: ArrayRef, area: int) -> tuple[Any, int]:
    """The labels on the input's grid (resampled back when the image was rescaled)."""
    labels = target.open()
    if plan.scale == 1.0:
        return labels, area
    import dask.array as da

    from .rescale import restore_labels

    if not isinstance(labels, np.ndarray):
        labels = da.from_array(labels, chunks=labels.chunks)
    labels = restore_labels(labels, plan.image_shape)
    counted = (labels > 0).sum()
    return labels, int(counted.compute() if hasattr(counted, "compute") else counted)


def _provenance(plan: RunPlan, found: Scan, n: int, warnings: list[str]) -> dict[str, Any]:
    norm = plan.net.normalization
    return {
        "model": {"name": plan.model.name, "hash": plan.model.hash},
        "package": f"napari-sa2net {__version__}",
        "source": plan.original.name,
        # not "shape": tifffile reads a top-level "shape" in a JSON description as its own
        "image_shape": list(plan.original.shape),
        "scale": plan.scale,
        "mode": plan.thresholds.mode,
        "device": str(plan.device),
        "amp": bool(plan.amp),
        "thresholds": plan.thresholds.to_dict(),
        "tta": plan.settings.tta,
        "skip_background": {
            "enabled": bool(plan.settings.skip_background),
            "tiles_skipped": len(found.skip),
            "noise": None if found.noise is None else found.noise.tolist(),
        },
        "normalization": {
            **norm.to_dict(),
            "low": np.asarray(found.stats[0]).tolist(),
            "high": np.asarray(found.stats[1]).tolist(),
        },
        "n_objects": n,
        "warnings": list(warnings),
    }


def _write(plan: RunPlan, store: Any, labels: Any, provenance: dict[str, Any]) -> Path | None:
    """Finalize or write the output; ``None`` when the labels stay in memory."""
    if plan.out is None:
        return None
    pixel_size = getattr(plan.original, "pixel_size", None)
    if store is not None:
        return store.finalize(provenance, pixel_size=pixel_size)
    import dask
    import dask.array as da

    from ..io import write_labels_tiff, write_ome_zarr_labels

    if not isinstance(labels, (np.ndarray, da.Array)):
        labels = da.from_array(labels, chunks=labels.chunks)
    overwrite = plan.settings.overwrite
    with dask.config.set(scheduler="threads"):
        if plan.out.suffix.lower() == ".zarr":
            return write_ome_zarr_labels(plan.out, labels, provenance, overwrite=overwrite,
                                         pixel_size=pixel_size)  # fmt: skip
        return write_labels_tiff(plan.out, labels, provenance, overwrite=overwrite,
                                 pixel_size=pixel_size)  # fmt: skip
