"""What the objects pass hands to the GeoJSON and ImageJ writers, and the planes it reads.

QuPath's GeoJSON names a stack plane ``{"c": -1, "z": Z, "t": T}``; ImageJ ROIs take the
1-based slice of a plain stack (one plane axis) or the ``z`` / ``t`` position of a hyperstack
(two). ROI names are the label (``00042``), with the plane in front for stacks
(``0003-00042``) so that a stitched object keeps one name per plane and names stay unique.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .objects import PlaneInput
from .planes import StackLayout


class ObjectExporter:
    """``on_object`` of :func:`.objects.measure_job`: writes each object to the exports."""

    def __init__(self, writers: dict[str, Any], layout: StackLayout) -> None:
        self.writers, self.layout = writers, layout
        self._letters = [a.lower() for a, _ in layout.walked]
        self._sizes = [n for _, n in layout.walked]

    def _flat(self, position: dict[str, int]) -> int:
        lead = [position[a] for a in self._letters]
        return int(np.ravel_multi_index(lead, self._sizes)) if lead else 0

    def __call__(self, label: int, position: dict[str, int], polygons: list,
                 row: dict[str, float]) -> None:  # fmt: skip
        if not polygons:
            return
        stack = self.layout.is_stack
        geojson = self.writers.get("geojson")
        if geojson is not None:
            measurements = {k: v for k, v in row.items() if k != "label"}
            plane = {a: position[a] for a in ("z", "t") if a in position} if stack else None
            geojson.add(polygons, measurements, str(label), plane)
        rois = self.writers.get("imagej")
        if rois is not None:
            flat = self._flat(position)
            name = f"{flat + 1:04d}-{label:05d}" if stack else f"{label:05d}"
            rois.add(polygons[0][0], name, self._roi_position(position, flat))

    def _roi_position(self, position: dict[str, int], flat: int) -> dict[str, int] | None:
        if not self.layout.is_stack:
            return None
        if len(self._letters) == 1:
            return {"position": flat}
        return {a: position[a] for a in ("z", "t") if a in position}


def plane_inputs(image: Any, plan: Any, layout: StackLayout) -> list[PlaneInput]:
    """Every plane's :class:`.objects.PlaneInput`: its place and its (lazy) image."""
    from .plan import open_source

    settings = plan.settings
    inputs = []
    for lead, chosen in layout.planes():
        if any(lead):
            source = open_source(image, settings.channel, chosen, settings.axes)
        else:  # the first plane, opened by the plan
            source = plan.original
        position = {a.lower(): i for a, i in layout.position(lead).items()}
        inputs.append(PlaneInput(lead, position, source.data))
    return inputs


def export_labels(labels: Any, axes: str, targets: dict[str, Any],
                  pixel_size: tuple[float, float] | None = None) -> Any:  # fmt: skip
    """Write the GeoJSON / ImageJ exports of labels that exist already (a napari layer).

    Parameters
    ----------
    labels : array-like
        ``[T×][Z×]Y×X`` labels (numpy, dask or zarr), read chunk by chunk.
    axes : str
        Their axes (``"YX"``, ``"ZYX"``, ...).
    targets : dict
        ``{"geojson": path, "imagej": path}``: the files to write (atomically, replaced).

    Returns
    -------
    ObjectTable
        The shape measurements (no intensities: there is no image).
    """
    import contextlib
    from pathlib import Path

    from .._progress import run_job
    from ..io.atomic import atomic_path
    from ..io.object_files import GeoJsonWriter, RoiZipWriter
    from .objects import measure_job

    lead = tuple(a for a in axes.upper()[:-2])
    layout = StackLayout(tuple(zip(lead, labels.shape[: len(lead)])))
    planes = [PlaneInput(index, {a.lower(): i for a, i in zip(lead, index)}, None)
              for index, _ in layout.planes()]  # fmt: skip
    kinds = {"geojson": GeoJsonWriter, "imagej": RoiZipWriter}
    with contextlib.ExitStack() as stack:
        writers = {}
        for kind, path in targets.items():
            writer = kinds[kind](stack.enter_context(atomic_path(Path(path), overwrite=True)))
            stack.callback(writer.abort)
            writers[kind] = writer
        exporter = ObjectExporter(writers, layout)
        job = measure_job(labels, planes, max_id=int(labels.max()), pixel_size=pixel_size,
                          on_object=exporter)  # fmt: skip
        table = run_job(job)
        for writer in writers.values():
            writer.close()
    return table
