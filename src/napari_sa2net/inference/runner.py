"""Execute a :class:`.plan.RunPlan` for one plane: scan → predict → instances, in a thread.

:func:`run_plan` is a job generator: the work runs in one background thread (for a local CPU
run the persistent thread of :mod:`.compute`, where the model was loaded) and reports
:class:`~napari_sa2net._progress.Progress` events through a queue that the generator yields
from, so the caller (CLI bar, napari worker) never blocks on the work. Closing the generator
(a cancel) or an interrupt (Ctrl-C) stops the work at its next batch of tiles or tasks, waits for
the thread to end and deletes the scratch. The instance stage writes the labels into the
slot it is given (one plane of :class:`.outputs.LabelTarget`); writing the output is
:mod:`.stack`'s. Events, all at level 1 but the first:

- ``"scan"`` (chunks read), then one ``"tile"`` event whose ``payload`` is a
  :class:`.results.BackgroundMap` (when background skipping is on);
- ``"tile"`` after every batch (counting the tiles that are predicted); on the disk path the
  first carries a :class:`.results.ClassPreview` and then one per stored chunk a
  :class:`.results.StoredChunk` with the chunk's classes;
- ``"grow"`` / ``"label"`` (chunks of the instance stage).
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
from ..memory import freed_memory_kept, trim_if_above
from . import compute
from .instances import instances
from .maps import MapSink
from .pipeline import predict_chunks
from .plan import RunPlan
from .results import BackgroundMap, ClassPreview, SegmentResult, StoredChunk, TilingSummary
from .scan import Scan, scan
from .scratch import ArrayRef, Scratch, output_chunk

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


def run_plan(
    plan: RunPlan, slot: Any, predictor: MakePredictor | None = None
) -> Job[SegmentResult]:
    """Run ``plan`` in a worker thread, yielding its progress; see the module docstring.

    The labels go into ``slot`` (an :class:`.outputs.PlaneRef`: one plane of the run's
    :class:`.outputs.LabelTarget`, with its id offset); the returned result holds the plane's
    count, area, provenance and warnings, not the labels. ``predictor(stats)``, if given,
    makes the :class:`~.predictor.TilePredictor` from the slide's normalization statistics
    instead of the plan's model (a zero-cost predictor to measure the host pipeline, another
    model format).
    """
    started = time.perf_counter()
    yield Progress("segment", 0, 1, 0, plan.message())
    events: queue.Queue = queue.Queue()
    cancel = threading.Event()
    outcome: dict[str, Any] = {}
    scratch = _scratch_folder(plan)
    args = (plan, slot, scratch, Reporter(events, cancel), outcome, predictor)
    if compute.uses_compute_thread(plan.device) and plan.execution.client is None:
        work = compute.start(_work, *args)  # the thread that loaded the model: one OpenMP team
    else:
        work = compute.in_own_thread(_work, *args)
    try:
        while not work.done() or not events.empty():
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            yield event
    except BaseException:  # closed (cancel), Ctrl-C, or the consumer failed: stop, then clean
        cancel.set()
        raise
    finally:
        if not work.done():
            cancel.set()
            work.cancel()  # still queued behind another job's run: it never starts
        if not work.cancelled():
            work.result()  # _work keeps its errors in outcome
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


def _work(plan: RunPlan, slot: Any, scratch: Path | None, report: Reporter, outcome: dict,
          make: Any) -> None:  # fmt: skip
    with freed_memory_kept():  # forward passes reuse their activations' pages (no refaulting)
        try:
            outcome["result"] = _segment(plan, slot, scratch, report, make)
        except BaseException as err:  # handed to the generator, which re-raises it
            outcome["error"] = err


def _scan(plan: RunPlan, report: Reporter) -> Scan:
    def progress(done: int, total: int) -> None:
        report.check()
        report.post("scan", done, total, "reading the image")

    scheduler = plan.execution.client or ("threads" if plan.execution.workers > 1 else "sync")
    from .flatten import reach_px

    return scan(plan.source.data, plan.tiles, plan.net.normalization,
                plan.settings.skip_background, scheduler, progress,
                measure_noise=plan.settings.denoise == "auto", flatten=plan.settings.flatten,
                reach=reach_px(plan.net.metadata))  # fmt: skip


def _flattening(plan: RunPlan, found: Scan, report: Reporter) -> tuple[Any, dict[str, Any]]:
    """The image the tiles are read from (flattened when the scan estimated a field to
    subtract) and the run's provenance entry; announced when ``"auto"`` flattens."""
    from .flatten import flatten_data

    uneven = None if found.unevenness is None else round(found.unevenness, 4)
    entry = {"setting": plan.settings.flatten, "unevenness": uneven,
             "applied": found.field is not None}  # fmt: skip
    if found.field is None:
        return plan.source.data, entry
    if plan.settings.flatten == "auto":
        report.post("scan", 1, 1, f"uneven illumination (background varies by {uneven:.0%} of "
                    "the range): flattened before the model (flatten off: never)")  # fmt: skip
    return flatten_data(plan.source.data, found.field, found.cell), entry


def _smoothing(plan: RunPlan, found: Scan, report: Reporter, custom: bool) -> dict[str, Any]:
    """What :mod:`.denoise` decided for this run (its provenance entry); announced when
    ``"auto"`` smooths. A ``custom`` predictor (``run_plan(predictor=...)``) is not smoothed."""
    from .denoise import denoise_sigma, relative_noise

    relative = relative_noise(found.noise, found.stats)
    sigma = None if custom else denoise_sigma(plan.settings.denoise, relative)
    if sigma is not None and plan.settings.denoise == "auto":
        report.post("scan", 1, 1, f"low-light image (noise {relative:.1%} of its range): "
                    f"tiles smoothed by a {sigma:g}-px Gaussian (denoise off: never)")  # fmt: skip
    noise = None if relative is None else round(relative, 5)
    return {"setting": plan.settings.denoise, "noise": noise, "sigma": sigma}


def _predictor(plan: RunPlan, found: Scan, report: Reporter, make: Any = None,
               smooth: float | None = None) -> Any:  # fmt: skip
    from .predictor import Predictor

    if make is not None:
        predictor = make(found.stats)
    else:
        predictor = Predictor(plan.net, plan.device, plan.amp, plan.batch_size,
                              stats=found.stats, tta=plan.settings.tta, smooth=smooth)  # fmt: skip
    predictor.cancel_event = report.cancel
    predictor.on_batch = report.on_batch
    client = plan.execution.client
    if client is None:
        return predictor
    from .workers import share_cores

    share_cores(client)
    return client.scatter(predictor, broadcast=True, hash=False)  # the model travels once


def _segment(plan: RunPlan, slot: Any, folder: Path | None, report: Reporter,
             make: Any) -> SegmentResult:  # fmt: skip
    found = _scan(plan, report)
    report.tiles_total = len(plan.tiles) - len(found.skip)
    if found.covered is not None:
        report.payload(BackgroundMap(~found.covered, found.cell, plan.shape, plan.image_shape,
                                     len(found.skip), len(plan.tiles)))  # fmt: skip
    smoothing = _smoothing(plan, found, report, make is not None)
    data, flattening = _flattening(plan, found, report)
    predictor = _predictor(plan, found, report, make, smoothing["sigma"])
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

    predict_chunks(data, plan.tiles, plan.chunking, predictor, found.skip,
                   store, plan.execution, on_chunk)  # fmt: skip
    report.check()
    summary = TilingSummary(plan.tiles.tile, plan.tiles.overlap, plan.batch_size,
                            plan.tiles.grid, plan.chunking.chunk, plan.storage,
                            report.tiles_total, len(found.skip))  # fmt: skip
    direct = plan.scale == 1.0  # the instance stage writes straight into the output
    labels = slot if direct else scratch.create("labels")
    numbering, warnings = instances(plan.chunking, sink, labels,
                                    report.run_tasks(plan.execution))  # fmt: skip
    report.check()
    area = numbering.area if direct else _restore(plan, labels, slot)
    provenance = _provenance(plan, found, numbering.count, warnings)
    provenance["tiling"] = summary.to_dict()
    provenance["denoise"] = smoothing
    provenance["flatten"] = flattening
    return SegmentResult(None, None, numbering.count, 0.0, str(plan.device), summary,
                         provenance, area, warnings)  # fmt: skip


def _restore(plan: RunPlan, labels: ArrayRef, slot: Any) -> int:
    """Resample the labels back to the input's grid into ``slot``; returns their area."""
    import dask
    import dask.array as da

    from .rescale import restore_labels

    array = labels.open()  # numpy or zarr: read where each output chunk needs it
    restored = restore_labels(array, plan.image_shape)
    if isinstance(restored, np.ndarray):
        restored = da.from_array(restored, chunks=1024)
    writer = slot.open()
    chunks = tuple(output_chunk(c) for c in plan.chunking.chunk)
    with dask.config.set(scheduler="threads"):
        da.store(restored.rechunk(chunks), writer, lock=False)
    return writer.written


def _provenance(plan: RunPlan, found: Scan, n: int, warnings: list[str]) -> dict[str, Any]:
    norm = plan.net.normalization
    return {
        "model": {"name": plan.model.name, "hash": plan.model.hash},
        "package": f"napari-sa2net {__version__}",
        "source": plan.original.name,
        # not "shape": tifffile reads a top-level "shape" in a JSON description as its own
        "image_shape": list(plan.original.shape),
        "scale": plan.scale,
        "diameter": None if plan.size is None else plan.size.to_dict(),
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
