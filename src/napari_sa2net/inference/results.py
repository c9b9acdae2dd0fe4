"""What a segmentation run returns and announces: the result and the typed preview payloads.

A consumer that needs a file, a count or a preview reads it from these fields (the
``Progress.payload`` of a ``"tile"`` / ``"scan"`` event, or the returned :class:`SegmentResult`),
never from a progress message. Nothing here imports torch, dask or zarr.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TilingSummary:
    """How a run was tiled and where it kept its scratch.

    Attributes
    ----------
    tile, overlap, batch_size : int
        Tile edge, overlap (pixels) and tiles per forward pass.
    grid : tuple of int
        Tile rows and columns.
    chunks : tuple of int
        Chunk edge ``(rows, columns)`` of the pipeline.
    storage : str
        ``"memory"`` (numpy scratch) or ``"disk"`` (zarr scratch next to the output).
    tiles_predicted, tiles_skipped : int
        Tiles that went through the network and tiles skipped as empty background.
    """

    tile: int
    overlap: int
    batch_size: int
    grid: tuple[int, int]
    chunks: tuple[int, int]
    storage: str
    tiles_predicted: int = 0
    tiles_skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class SegmentResult:
    """What :func:`~napari_sa2net.inference.segment_job` returns.

    Attributes
    ----------
    labels : numpy.ndarray or Path
        ``Y×X`` (``[T×][Z×]Y×X`` for a stack) uint32 instance labels in memory, or the path
        they were written to.
    path : Path or None
        The written output (``.zarr`` or ``.tif``); ``None`` when kept in memory.
    n_objects : int
        Number of objects; ids are ``1..n_objects``, unique across a stack.
    seconds : float
        Wall time of the whole job.
    device : str
        Compute device used.
    plan : TilingSummary
        Tile size, overlap, grid, chunking, storage and skipped tiles.
    provenance : dict
        Model name and hash, package version, tiling, thresholds, normalization statistics.
    total_area_px : int
        Pixels inside objects (on the input grid), for mean object areas without a re-read.
    warnings : list of str
        What the user should know about this result (e.g. objects too large for exact
        chunking); also in ``provenance["warnings"]``.
    axes : str
        Axes of ``labels``: ``"YX"``, or the plane axes of a stack first (``"ZYX"``, ``"TYX"``).
    objects : ObjectTable or None
        The per-object measurements (with ``measure``, ``export``), else ``None``.
    outputs : dict of str to Path
        Every file written: ``"labels"``, and ``"objects"``, ``"geojson"``, ``"imagej"``.
    """

    labels: Any
    path: Path | None
    n_objects: int
    seconds: float
    device: str
    plan: TilingSummary
    provenance: dict[str, Any] = field(default_factory=dict)
    total_area_px: int = 0
    warnings: list[str] = field(default_factory=list)
    axes: str = "YX"
    objects: ObjectTable | None = None
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.provenance

    @property
    def mean_area_px(self) -> float:
        """Mean object area in pixels (0 without objects)."""
        return self.total_area_px / self.n_objects if self.n_objects else 0.0


@dataclass(frozen=True)
class ClassPreview:
    """A running segmentation will announce its classes chunk by chunk (a ``Progress.payload``).

    Announced once before the first :class:`StoredChunk`, on the disk path only (images above
    :data:`.settings.IN_MEMORY_MAX_PIXELS` or zarr outputs).

    Attributes
    ----------
    mode : str
        ``"instance"`` or ``"binary"``.
    shape : tuple of int
        ``(H, W)`` of the prediction grid.
    image_shape : tuple of int
        ``(Y, X)`` of the input image; differs from ``shape`` when the image was rescaled
        (grid pixel ``i`` lies at image pixel ``i * Y / H + (Y / H - 1) / 2``).
    """

    mode: str
    shape: tuple[int, int]
    image_shape: tuple[int, int]


@dataclass(frozen=True)
class StoredChunk:
    """A chunk has been predicted and stored (a ``Progress.payload``).

    Attributes
    ----------
    bounds : tuple of int
        ``(y0, y1, x0, x1)`` on the prediction grid, end exclusive.
    classes : numpy.ndarray
        ``h×w`` uint8 of the chunk: 0 background, 1 object, 2 object interior (a seed; instance
        mode only), as the job's thresholds decide. The consumer owns it.
    preview : ClassPreview
        What the chunk belongs to.
    """

    bounds: tuple[int, int, int, int]
    classes: np.ndarray
    preview: ClassPreview


@dataclass(frozen=True)
class BackgroundMap:
    """Which parts of the image were skipped as empty background (a ``Progress.payload``).

    Announced once, after the scan and before any tile is predicted.

    Attributes
    ----------
    skipped : numpy.ndarray
        ``h×w`` bool on a grid of ``cell × cell`` pixel cells of the prediction grid: True where
        no predicted tile reaches (those pixels are background without a forward pass).
    cell : int
        Edge of a cell in prediction-grid pixels.
    shape, image_shape : tuple of int
        Prediction grid and input image ``(H, W)`` (they differ for rescaled runs).
    tiles_skipped, tiles_total : int
        Tiles skipped and tiles in the plan.
    """

    skipped: np.ndarray
    cell: int
    shape: tuple[int, int]
    image_shape: tuple[int, int]
    tiles_skipped: int
    tiles_total: int

    @property
    def fraction_skipped(self) -> float:
        return self.tiles_skipped / self.tiles_total if self.tiles_total else 0.0


@dataclass(frozen=True)
class ObjectTable:
    """One row per object (per object and plane in a stack): what ``measure`` computes.

    Attributes
    ----------
    columns : tuple of str
        Column names in order: ``label``, the plane axes of a stack (``t``, ``z``), ``area_px``,
        ``area_um2`` (when the pixel size is known), ``centroid_y``, ``centroid_x``,
        ``bbox_y0``, ``bbox_x0``, ``bbox_y1``, ``bbox_x1`` (pixels, end exclusive), then
        ``mean_intensity``, ``max_intensity``, ``integrated_intensity`` (``_c0``, ``_c1``, ...
        per channel when the model sees several), ``eccentricity``, ``solidity``,
        ``perimeter`` (pixels).
    data : dict of str to numpy.ndarray
        One array per column, all of the same length, sorted by plane, then label.
    """

    columns: tuple[str, ...]
    data: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.data[self.columns[0]]) if self.columns else 0

    def features(self) -> dict[str, np.ndarray]:
        """The table as napari ``Labels.features`` (its ``index`` column maps label values)."""
        return {"index": self.data["label"], **{c: self.data[c] for c in self.columns}}


@dataclass(frozen=True)
class PlaneDone:
    """A plane of a stack has been segmented (the ``payload`` of a level-0 ``"plane"`` event).

    Attributes
    ----------
    index, total : int
        Planes done (1-based) and planes in the run.
    position : dict of str to int
        The plane's index along each plane axis of the labels (``{"Z": 3}``).
    lead : tuple of int
        The same as an index into the labels' leading axes.
    n_objects : int
        Objects of this plane.
    shape : tuple of int
        Shape of the whole label stack (``[T, ][Z, ]Y, X``).
    axes : str
        Its axes (``"ZYX"``).
    labels : numpy.ndarray or None
        The plane's final ``Y×X`` labels (stack-wide ids) when the run keeps them in memory.
    """

    index: int
    total: int
    position: dict[str, int]
    lead: tuple[int, ...]
    n_objects: int
    shape: tuple[int, ...]
    axes: str
    labels: np.ndarray | None = None
