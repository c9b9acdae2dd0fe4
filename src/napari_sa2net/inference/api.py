"""``segment_job`` / ``segment``: an image (array or file) in, instance labels out, tiled.

Every image runs through one pipeline (:mod:`.plan` → :mod:`.runner`): the settings are
validated at once, the run is planned (output checked, image opened, model loaded, tiles and
chunks sized), one pass reads the image for its statistics and its empty background, the tiles
are predicted chunk by chunk, the instance labels are built with global ids and written. Small
images keep their scratch maps in memory; large ones or zarr outputs keep them on disk next to
the output and write the labels chunk by chunk. Closing the generator (a cancel) stops the work
at its next batch, removes the scratch and leaves no output behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._progress import Job, Progress, run_job
from .results import SegmentResult
from .settings import SegmentSettings, SettingError


def segment(image: Any, settings: SegmentSettings | None = None, **kwargs: Any) -> SegmentResult:
    """Run :func:`segment_job` to the end and return its :class:`.results.SegmentResult`."""
    return run_job(segment_job(image, settings, **kwargs))


def segment_job(
    image: Any,
    settings: SegmentSettings | None = None,
    *,
    predictor: Callable[[Any], Any] | None = None,
    **kwargs: Any,
) -> Job[SegmentResult]:
    """Segment ``image`` into instance labels with tiled SA2-Net inference.

    Parameters
    ----------
    image : path, numpy.ndarray or dask.array.Array
        Anything :func:`napari_sa2net.io.open_image` reads (``YX``, ``YXC``, ``CYX``, files).
    settings : SegmentSettings, optional
        The run's settings; or give them as keyword arguments (``model=``, ``tile=``,
        ``out=``, ... : the fields of :class:`.settings.SegmentSettings`), or both (keywords
        override). A bad value raises :class:`.settings.SettingError` at once, when the job
        is created.
    predictor : callable, optional
        ``predictor(stats)`` makes the :class:`.predictor.TilePredictor` from the slide's
        normalization statistics, in place of the model's (the model still sizes the tiles).

    Yields
    ------
    Progress
        One level-0 ``"segment"`` event with the plan and its memory / time estimate, then
        level-1 events: ``"scan"``, ``"tile"`` (after every batch; some carry a ``payload``:
        :class:`.results.BackgroundMap`, :class:`.results.ClassPreview`,
        :class:`.results.StoredChunk`), ``"grow"`` / ``"label"`` and ``"write"``.

    Returns
    -------
    SegmentResult
    """
    if settings is None:
        settings = SegmentSettings.from_kwargs(kwargs)
    elif kwargs:
        settings = settings.replace(**kwargs)
    if settings.export and settings.out is None:  # the exports are written beside the labels
        raise SettingError(
            "out", None, f"is needed to export {', '.join(settings.export)}", "labels.zarr"
        )
    return _job(image, settings, predictor)


def _job(image: Any, settings: SegmentSettings, predictor: Any) -> Job[SegmentResult]:
    from .stack import segment_planes

    return (yield from segment_planes(image, settings, predictor))


def labels_of(result: SegmentResult) -> np.ndarray:
    """In-memory labels of a result (reads level 0 of a written output)."""
    if isinstance(result.labels, np.ndarray):
        return result.labels
    from ..io import read_labels

    data, _ = read_labels(result.path)
    return np.asarray(data)


__all__ = ["Progress", "SegmentResult", "labels_of", "segment", "segment_job"]
