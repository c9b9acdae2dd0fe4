"""The work of one segmentation run, executed in a background thread by :mod:`.api`.

The work reports through ``events`` (a queue the generator in :mod:`.api` drains): ``("stage",
name)``, and on the chunked path ``("preview", ProbabilityPreview)`` once the scratch
probabilities exist, then ``("chunk", StoredChunk)`` after each stored chunk, so a viewer can
show where nuclei were found while the slide is still being predicted.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .postprocess import probabilities_to_instances
from .rescale import restore_labels
from .stitching import describe, predict_in_memory


@dataclass(frozen=True)
class ProbabilityPreview:
    """Where a running chunked segmentation stores its probabilities (a ``Progress.payload``).

    Attributes
    ----------
    path : Path
        A zarr array ``K×H×W`` float32 of class probabilities on the prediction grid (instance
        mode: 0 background, 1 interior, 2 boundary; binary mode: one foreground class). Chunks
        not yet predicted read as 0. It is scratch: deleted when the job ends, so read each
        chunk when its :class:`StoredChunk` event arrives and never after the job has ended.
    mode : str
        ``"instance"`` or ``"binary"``.
    shape : tuple of int
        ``(H, W)`` of the prediction grid.
    image_shape : tuple of int
        ``(Y, X)`` of the input image; differs from ``shape`` when the image was rescaled
        (grid pixel ``i`` lies at image pixel ``i * Y / H + (Y / H - 1) / 2``).
    interior_threshold, foreground_threshold : float
        The job's thresholds, for a preview that looks like the final labels.
    """

    path: Path
    mode: str
    shape: tuple[int, int]
    image_shape: tuple[int, int]
    interior_threshold: float
    foreground_threshold: float


@dataclass(frozen=True)
class StoredChunk:
    """A chunk of :attr:`preview` has been written (a ``Progress.payload``).

    ``bounds`` is ``(y0, y1, x0, x1)`` on the prediction grid, end exclusive.
    """

    bounds: tuple[int, int, int, int]
    preview: ProbabilityPreview


def work(run: Any, scratch: Path, events: queue.Queue, outcome: dict[str, Any]) -> None:
    """Predict, post-process and write; results or the error go into ``outcome``."""
    try:
        client = _client(run.args["scheduler"])
        labels, n = (
            _labels_chunked(run, scratch, events, client)
            if run.chunked
            else (_labels_in_memory(run))
        )
        if run.original is not None:
            labels = restore_labels(labels, run.original.shape[:2])
        provenance = _provenance(run, n)
        path = None
        if run.out is not None:
            events.put(("stage", "write"))
            path = _write(run, labels, provenance)
            outcome["written"] = True
        result_labels = path if path is not None else np.asarray(labels)
        from .api import SegmentResult

        outcome["result"] = SegmentResult(
            result_labels,
            path,
            n,
            0.0,
            str(run.predictor.device),
            describe(run.plan, run.chunking),
            provenance,
        )
    except BaseException as err:  # handed to the generator, which re-raises it
        outcome["error"] = err
    finally:
        events.put(("end", None))


def _client(scheduler: Any) -> Any:
    if scheduler is None or scheduler in ("threads", "sync", "synchronous"):
        return scheduler or "threads"
    if isinstance(scheduler, str):
        from distributed import Client

        return Client(scheduler)
    return scheduler


def _kwargs(run: Any) -> dict[str, Any]:
    from .postprocess import DEFAULT_MIN_SIZE

    min_size = run.args["min_size"]
    return {
        "interior_threshold": run.args["interior_threshold"],
        "foreground_threshold": run.args["foreground_threshold"],
        "min_size": DEFAULT_MIN_SIZE if min_size is None else int(min_size),
    }


def _labels_in_memory(run: Any) -> tuple[np.ndarray, int]:
    image = np.asarray(run.source.data)
    probs = predict_in_memory(
        image, run.plan, run.predictor, run.stats, run.net.num_classes, run.flat_range
    )
    labels = probabilities_to_instances(probs, run.mode, **_kwargs(run))
    return labels, int(labels.max(initial=0))


def _labels_chunked(run: Any, scratch: Path, events: queue.Queue, client: Any) -> tuple[Any, int]:
    import dask.array as da

    from ..io._zarr_compat import create_array
    from .pipeline import instances_chunked, store_probabilities

    predictor = run.predictor
    if not isinstance(client, str):  # distributed: ship the model to the workers once
        predictor = client.scatter(run.predictor, broadcast=True, hash=False)
    path = str(scratch / "probs")
    height, width = run.plan.shape
    target = create_array(
        path,
        shape=(run.net.num_classes, height, width),
        chunks=(run.net.num_classes, *(int(c[0]) for c in run.chunking.dask_chunks())),
        dtype="float32",
        overwrite=True,
    )
    preview = ProbabilityPreview(
        Path(path),
        run.mode,
        (height, width),
        tuple((run.original or run.source).shape[:2]),
        float(run.args["interior_threshold"]),
        float(run.args["foreground_threshold"]),
    )
    events.put(("preview", preview))

    def on_chunk(bounds: tuple[int, int, int, int]) -> None:
        events.put(("chunk", StoredChunk(tuple(int(b) for b in bounds), preview)))

    store_probabilities(
        run.source.data,
        run.plan,
        run.chunking,
        predictor,
        run.stats,
        run.net.num_classes,
        run.flat_range,
        target,
        scheduler=client,
        on_chunk=on_chunk,
    )
    events.put(("stage", "postprocess"))
    labels, n = instances_chunked(
        da.from_zarr(path), run.mode, scratch, grow_depth=64, scheduler=client, **_kwargs(run)
    )
    return labels, n


def _provenance(run: Any, n: int) -> dict[str, Any]:
    norm = run.net.normalization
    return {
        "model": run.model_info,
        "package": f"napari-sa2net {__version__}",
        "source": run.source.name,
        # not "shape": tifffile reads a top-level "shape" in a JSON description as its own
        "image_shape": list((run.original or run.source).shape),
        "scale": run.scale,
        "mode": run.mode,
        "tiling": {**describe(run.plan, run.chunking), "batch_size": run.choice.batch_size},
        "device": str(run.predictor.device),
        "amp": bool(run.predictor.amp_dtype is not None),
        "thresholds": _kwargs(run),
        "skip_background_range": run.flat_range,
        "normalization": {
            **norm.to_dict(),
            "low": np.asarray(run.stats[0]).tolist(),
            "high": np.asarray(run.stats[1]).tolist(),
        },
        "n_objects": n,
    }


def _write(run: Any, labels: Any, provenance: dict[str, Any]) -> Path:
    import dask

    from ..io import write_labels_tiff, write_ome_zarr_labels

    pixel_size = getattr(run.original or run.source, "pixel_size", None)
    overwrite = run.args["overwrite"]
    # Written by local threads even with a cluster: the labels are cheap lookups of scratch
    # arrays, and the io writer's zarr target does not pickle (holds a lock).
    with dask.config.set(scheduler="threads"):
        if run.out.suffix.lower() == ".zarr":
            return write_ome_zarr_labels(
                run.out, labels, provenance, overwrite=overwrite, pixel_size=pixel_size
            )
        return write_labels_tiff(
            run.out, labels, provenance, overwrite=overwrite, pixel_size=pixel_size
        )
