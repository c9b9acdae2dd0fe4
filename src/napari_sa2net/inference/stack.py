"""The segmentation job: every plane of an image, then the stack-wide outputs.

A 2-D image is one plane; a Z-stack or time-lapse is walked plane by plane (:mod:`.planes`),
each plane lazily and out of core like a slide: one plan for the whole run (model, tiles,
chunks), one :func:`.runner.run_plan` per plane into the run's :class:`.outputs.LabelTarget`
with the plane's id offset, so ids are unique across the stack. With ``stitch_z`` each plane is
linked to the one below it as soon as it is done (:mod:`.stitch`). Then, with ``measure`` /
``export``, the objects are measured and outlined chunk by chunk (:mod:`.objects`) and every
output is written atomically: the companions into partial files, renamed after the labels.
A cancel (closing the generator) at any point leaves none of them.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import Job, Progress, run_job
from .planes import StackLayout, layout_of
from .results import ObjectTable, PlaneDone, SegmentResult, TilingSummary
from .settings import IN_MEMORY_MAX_PIXELS, SegmentSettings, companion_paths

#: Chunk edge of the measuring passes (a 1024² uint32 block is 4 MB).
MEASURE_CHUNK = 1024


@dataclass
class _Run:
    """What every step of one run shares."""

    image: Any
    plan: Any
    layout: StackLayout
    target: Any
    companions: dict
    predictor: Any

    @property
    def settings(self) -> SegmentSettings:
        return self.plan.settings


def segment_planes(
    image: Any, settings: SegmentSettings, predictor: Any = None
) -> Job[SegmentResult]:
    """Segment every plane ``settings`` asks for; see :func:`.api.segment_job`."""
    from ..io.atomic import check_writable
    from .outputs import create_target
    from .plan import plan_run

    layout = layout_of(image, settings)  # bad axes / plane / channel fail before the model
    companions = {} if settings.out is None else companion_paths(settings.out, settings)
    for path in companions.values():
        check_writable(path.absolute(), settings.overwrite)
    plan = plan_run(image, settings, next(layout.planes())[1], _sampler(predictor))
    target = create_target(plan, layout.lead_shape, layout.axes)
    try:
        return (yield from _run(_Run(image, plan, layout, target, companions, predictor)))
    except BaseException:
        target.abort()
        raise


def _sampler(predictor: Any) -> Any:
    """The engine's labels of a small 2-D source, for the size estimate (:mod:`.autosize`)."""

    def segment_sample(source: Any, settings: SegmentSettings) -> np.ndarray:
        return np.asarray(run_job(segment_planes(source, settings, predictor)).labels)

    return segment_sample


def _run(run: _Run) -> Job[SegmentResult]:
    started = time.perf_counter()
    layout = run.layout
    where = f"; {len(layout)} planes ({layout.axes})" if layout.is_stack else ""
    yield Progress("segment", 0, 1, 0, run.plan.message() + where)
    results: list[SegmentResult] = []
    next_id = 0
    for k, (lead, chosen) in enumerate(layout.planes()):
        offset = sum(r.n_objects for r in results)  # before stitching: ids unique per plane
        result, next_id = yield from _plane(run, lead, chosen, offset, next_id)
        results.append(result)
        if layout.is_stack:
            yield _plane_event(k, layout, run.target, lead, result)
    yield Progress("write", 0, None, 1, "write")
    provenance = _provenance(results, layout, next_id, run.settings)
    table = None
    with contextlib.ExitStack() as partials:
        if run.settings.measure or run.settings.export:
            table = yield from _objects(run, next_id, partials)
        properties = _properties(table) if table is not None and run.settings.measure else None
        pixel_size = getattr(run.plan.original, "pixel_size", None)
        labels = run.target.finish(provenance, pixel_size, properties)
    seconds = time.perf_counter() - started
    return _result(labels, run, results, next_id, provenance, table, seconds)


def _plane(run: _Run, lead: tuple, chosen: Any, offset: int,
           next_id: int) -> Job[tuple[SegmentResult, int]]:  # fmt: skip
    """Segment one plane into the target; link it to the plane below when stitching."""
    from .plan import open_source, plan_plane
    from .runner import run_plan
    from .stitch import stitch_plane

    plan, settings = run.plan, run.settings
    if any(lead):  # the first plane was opened by plan_run
        plan = plan_plane(plan, open_source(run.image, settings.channel, chosen, settings.axes))
    inner = run_plan(plan, run.target.plane(lead, offset), run.predictor)
    try:
        while True:
            try:
                event = next(inner)
            except StopIteration as stop:
                result = stop.value
                break
            if not (run.layout.is_stack and event.level == 0):  # one plan line for a stack
                yield event
    finally:
        inner.close()
    ids = (offset + 1, offset + result.n_objects)
    if settings.stitch_z is None:
        return result, ids[1]
    z = run.layout.axes.index("Z")
    below = None if lead[z] == 0 else (*lead[:z], lead[z] - 1, *lead[z + 1 :])
    next_id = stitch_plane(run.target.array, below, lead, ids, next_id, settings.stitch_z,
                           plan.chunking.chunk[0])  # fmt: skip
    return result, next_id


def _plane_event(k: int, layout: StackLayout, target: Any, lead: tuple, result: Any) -> Progress:
    position = layout.position(lead)
    shown = ", ".join(f"{a}={i}" for a, i in position.items())
    labels = None
    plane_pixels = target.shape[-1] * target.shape[-2]
    if target.in_memory and plane_pixels <= IN_MEMORY_MAX_PIXELS:
        labels = target.array[lead].copy()  # a preview for the viewer, stack-wide ids
    done = PlaneDone(k + 1, len(layout), position, lead, result.n_objects, target.shape,
                     layout.axes, labels)  # fmt: skip
    text = f"plane {k + 1} / {len(layout)} ({shown}): {result.n_objects} objects"
    return Progress("plane", k + 1, len(layout), 0, text, payload=done)


def _objects(run: _Run, max_id: int, partials: contextlib.ExitStack) -> Job[ObjectTable]:
    """Measure and outline every object into the companion files' partials."""
    from ..io.atomic import atomic_path
    from ..io.object_files import GeoJsonWriter, RoiZipWriter, write_objects_csv
    from .exporting import ObjectExporter, plane_inputs
    from .objects import measure_job

    paths = {k: partials.enter_context(atomic_path(p.absolute(), run.settings.overwrite))
             for k, p in run.companions.items()}  # fmt: skip
    writers = {}
    if "geojson" in paths:
        writers["geojson"] = GeoJsonWriter(paths["geojson"])
    if "imagej" in paths:
        writers["imagej"] = RoiZipWriter(paths["imagej"])
    for writer in writers.values():
        partials.callback(writer.abort)  # closed before the partial is renamed or removed
    exporter = ObjectExporter(writers, run.layout) if writers else None
    table = yield from measure_job(
        run.target.array,
        plane_inputs(run.image, run.plan, run.layout),
        max_id=max_id,
        chunk=MEASURE_CHUNK,
        pixel_size=getattr(run.plan.original, "pixel_size", None),
        on_object=exporter,
    )
    for writer in writers.values():
        writer.close()
    if "objects" in paths:
        write_objects_csv(paths["objects"], table.columns, table.data)
    return table


def _properties(table: ObjectTable) -> list[dict[str, Any]]:
    """NGFF ``image-label`` properties: the table's row of each label (stacks: summed area)."""
    import numpy as np

    labels = table.data["label"]
    if len(np.unique(labels)) == len(labels):
        skip = {"label"}
        return [{"label-value": int(labels[i]),
                 **{c: table.data[c][i].item() for c in table.columns if c not in skip}}
                for i in range(len(labels))]  # fmt: skip
    ids, inverse = np.unique(labels, return_inverse=True)
    area = np.bincount(inverse, weights=table.data["area_px"]).astype(np.int64)
    planes = np.bincount(inverse)
    return [{"label-value": int(i), "area_px": int(a), "planes": int(n)}
            for i, a, n in zip(ids, area, planes)]  # fmt: skip


def _provenance(results: list, layout: StackLayout, n: int, settings: Any) -> dict[str, Any]:
    provenance = dict(results[0].provenance)
    provenance["n_objects"] = n
    provenance["warnings"] = sorted({w for r in results for w in r.warnings})
    if layout.is_stack:
        provenance["axes"] = layout.axes
        provenance["stitch_z"] = settings.stitch_z
        provenance["planes"] = [
            {"position": layout.position(lead), "n_objects": r.n_objects,
             "normalization": {k: r.provenance["normalization"][k] for k in ("low", "high")}}
            for (lead, _), r in zip(layout.planes(), results)
        ]  # fmt: skip
    return provenance


def _result(labels: Any, run: _Run, results: list, n: int, provenance: dict, table: Any,
            seconds: float) -> SegmentResult:  # fmt: skip
    first = results[0].plan
    summary = TilingSummary(first.tile, first.overlap, first.batch_size, first.grid, first.chunks,
                            first.storage, sum(r.plan.tiles_predicted for r in results),
                            sum(r.plan.tiles_skipped for r in results))  # fmt: skip
    path = labels if isinstance(labels, Path) else None
    provenance["seconds"] = round(seconds, 3)
    outputs = {"labels": path} if path else {}
    outputs |= {k: p.absolute() for k, p in run.companions.items()}
    return SegmentResult(
        labels, path, n, seconds, results[0].device, summary, provenance,
        sum(r.total_area_px for r in results), list(provenance["warnings"]), run.layout.axes,
        table, outputs,
    )  # fmt: skip
