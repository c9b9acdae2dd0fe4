"""What a user chooses for a segmentation run, validated once; the rules all front ends share.

:class:`SegmentSettings` is built once at the public boundary (the Python API, the segment and
batch widgets, ``sa2net segment`` / ``sa2net batch``) and passed whole to the engine. Every check
that needs neither the image nor the model happens in its constructor, so a bad value fails in
microseconds, before a model loads or a pixel is read. A bad value raises :class:`SettingError`,
a ``ValueError`` that names the setting; :meth:`SettingError.for_cli` words the same message with
the command-line flag (``--tile 7`` instead of ``tile=7``).

The module also holds the rules that the widget, the CLI and the batch job must agree on, each in
one place: which images go through the chunked pipeline or may be returned in memory
(:func:`storage_for`, :func:`output_format`), how outputs are named (:func:`label_path`,
:func:`check_collisions`) and whether a device is an accelerator (:func:`is_accelerator`).
Nothing here imports torch, dask or zarr.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .setting_checks import (
    ALIGN,
    Plane,
    SettingError,
    aligned,
    check_axes,
    check_denoise,
    check_exports,
    check_flatten,
    check_stitch,
    fraction,
    parse_plane,
)
from .setting_checks import (
    EXPORTS as EXPORTS,
)
from .setting_checks import (
    cli_flag as cli_flag,
)

#: Images up to this many pixels keep their scratch maps in memory; above it, or with a zarr
#: output, the scratch lives on disk (zarr) next to the output. ``output_format("auto")``
#: writes OME-Zarr above it and a label TIFF up to it.
IN_MEMORY_MAX_PIXELS = 4096 * 4096
#: Without an output path, images above this are refused (the labels alone would be 256 MB+);
#: the segment widget writes them to a temporary folder instead.
RETURN_MAX_PIXELS = 8192 * 8192
OUTPUT_SUFFIXES = (".zarr", ".tif", ".tiff")
FORMATS = ("auto", "tif", "zarr")
#: Test-time augmentation: how many of a tile's 8 flips / rotations are averaged.
TTA_CHOICES = (1, 2, 4, 8)
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

Storage = Literal["memory", "disk"]


@dataclass(frozen=True)
class SegmentSettings:
    """The settings of one segmentation run (frozen; every field checked on construction).

    Parameters
    ----------
    model : str, path or SA2Net, optional
        Bundled model name, checkpoint path or a loaded model; ``None`` is the bundled default.
    channel : int or tuple of int, optional
        Channel(s) the model takes, in the image's channel order.
    tile, overlap : int, optional
        Tile edge and overlap in pixels (multiples of 16); automatic when ``None``.
    batch_size : int, optional
        Tiles per forward pass; automatic when ``None``.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    amp : bool, optional
        Autocast on CUDA (default on there).
    out : Path, optional
        ``.zarr`` (OME-Zarr labels with a pyramid) or ``.tif``; ``None`` keeps the labels in
        memory (images up to :data:`RETURN_MAX_PIXELS`).
    overwrite : bool
        Replace an existing ``out``.
    scheduler : str or distributed.Client, optional
        ``None`` (local threads), a ``dask.distributed`` scheduler address or a client.
    skip_background : bool
        Neither read again nor predict tiles that hold only empty background (decided on a
        low-resolution map against the image's own noise, see :mod:`.scan`).
    interior_threshold, foreground_threshold : float
        Interior probability (for a model with a centre map: centre value) that seeds an
        object; foreground probability of object pixels.
    min_size : int, optional
        Objects with fewer pixels are removed; ``None``: a fifth of the area of the image's
        typical object when ``diameter="auto"`` measured it, else of the model's (111 px for
        the bundled model; 16 px for a model that records no size), see
        :func:`.postprocess.auto_min_size`. Objects touching the image's edge (nuclei cut
        by it) are kept down to a quarter of it.
    chunk : int, optional
        Chunk edge of the pipeline (default :func:`.sizing.default_chunk`: about 1024 px on a
        CPU, a multiple of the tile stride ``tile - overlap``, which keeps the blending spills
        that wait between chunk rows under an overlap high); never less than a tile (a smaller
        value is raised to the tile's edge).
    scale : float, optional
        Resample the image by this factor before prediction; labels come back on the input grid.
    diameter : float or "auto", optional
        Typical object diameter in pixels; sets ``scale`` from the model's training objects.
        ``"auto"`` (the default): measured on a sample of the image first (:mod:`.autosize`),
        and the image rescaled only when its objects are far from the trained size; a given
        ``scale`` takes its place. ``None``: no rescaling.
    tta : int
        Test-time augmentation: average the probabilities of 1 (off), 2, 4 or 8 flips /
        rotations of every tile (that many times the compute).
    denoise : float or "auto", optional
        Gaussian ``sigma`` in pixels (of the grid the model sees) applied to every tile before
        the model, for photon-starved images. ``"auto"`` (the default): 1 px when the image's
        own noise is at least 4 % of its intensity span (low light), none otherwise, see
        :mod:`.denoise`; ``None``: never.
    flatten : bool or "auto"
        Subtract the background field of uneven illumination (vignetting, haze) before the
        normalization, see :mod:`.flatten`. ``"auto"`` (the default): only where the field
        spans at least 30 % of the image's intensity span; ``True``: always; ``False``: never.
    plane : int or dict, optional
        Which plane(s) of a Z-stack / time-lapse to segment: ``None`` every plane (the labels
        keep the image's Z and T axes), an index along the image's one plane axis, or
        ``{"Z": 3}`` (the other plane axes are still walked). Stored as ``(axis, index)`` pairs.
    axes : str, optional
        The image's axes (``"ZYX"``, ``"TCYX"``), overriding the file's metadata.
    stitch_z : float, optional
        Link the objects of neighbouring Z planes into 3-D objects when their overlap (IoU) is
        at least this (Cellpose's ``stitch_threshold``); ``None`` keeps per-plane ids.
    measure : bool
        Measure every object (area, centroid, box, intensity, shape) into ``NAME_objects.csv``
        beside the labels, and into :attr:`.results.SegmentResult.objects`.
    export : tuple of str
        ``"geojson"`` (``NAME.geojson``, QuPath detections) and / or ``"imagej"``
        (``NAME_rois.zip``, an ImageJ ROI set) beside the labels; needs ``out``.
    """

    model: Any = None
    channel: int | tuple[int, ...] | None = None
    tile: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    amp: bool | None = None
    out: Path | None = None
    overwrite: bool = False
    scheduler: Any = None
    skip_background: bool = True
    interior_threshold: float = 0.5
    foreground_threshold: float = 0.5
    min_size: int | None = None
    chunk: int | None = None
    scale: float | None = None
    diameter: float | str | None = "auto"
    tta: int = 1
    denoise: float | str | None = "auto"
    flatten: bool | str = "auto"
    plane: Plane = None
    axes: str | None = None
    stitch_z: float | None = None
    measure: bool = False
    export: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.channel, list):
            object.__setattr__(self, "channel", tuple(self.channel))
        if self.out is not None and not isinstance(self.out, Path):
            object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "plane", parse_plane(self.plane))
        object.__setattr__(self, "axes", check_axes(self.axes))
        object.__setattr__(self, "export", check_exports(self.export))
        check_stitch(self.stitch_z)
        self._check_sizes()
        self._check_objects()
        self._check_output()

    def _check_sizes(self) -> None:
        aligned("tile", self.tile, ALIGN)
        aligned("overlap", self.overlap, 0)
        aligned("chunk", self.chunk, 4 * ALIGN)
        if self.tile is not None and self.overlap is not None and self.overlap >= self.tile:
            raise SettingError(
                "overlap",
                self.overlap,
                f"must be smaller than tile={self.tile} (or choose a larger tile)",
                self.tile // 4 // ALIGN * ALIGN,
            )
        batch = self.batch_size
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int)):
            raise SettingError("batch_size", batch, "must be a whole number >= 1", 1)
        if batch is not None and batch < 1:
            raise SettingError("batch_size", batch, "must be >= 1", 1)
        if not isinstance(self.device, str) or not DEVICE_PATTERN.match(self.device.lower()):
            raise SettingError(
                "device", self.device, "is not a device: use auto, cpu, cuda, cuda:N or mps"
            )

    def _check_objects(self) -> None:
        fraction("interior_threshold", self.interior_threshold)
        fraction("foreground_threshold", self.foreground_threshold)
        size = self.min_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise SettingError("min_size", size, "must be a whole number of pixels >= 0", 16)
        if self.scale is not None and self.diameter not in (None, "auto"):
            raise SettingError("diameter", self.diameter, "cannot be given together with scale")
        if (
            self.diameter is not None
            and self.diameter != "auto"
            and not (
                isinstance(self.diameter, (int, float))
                and not isinstance(self.diameter, bool)
                and self.diameter > 0
            )
        ):
            raise SettingError(
                "diameter", self.diameter, "must be a positive number of pixels or 'auto'", 30
            )
        if self.scale is not None and not (
            isinstance(self.scale, (int, float)) and 0.1 <= self.scale <= 10.0
        ):
            raise SettingError("scale", self.scale, "must lie between 0.1 and 10", 1.0)
        if self.tta not in TTA_CHOICES or isinstance(self.tta, bool):
            raise SettingError("tta", self.tta, "must be 1 (off), 2, 4 or 8", 8)
        check_denoise(self.denoise)
        check_flatten(self.flatten)
        channels = () if self.channel is None else self.channel
        channels = (channels,) if isinstance(channels, int) else channels
        for channel in channels:
            if isinstance(channel, bool) or not isinstance(channel, int) or channel < 0:
                raise SettingError("channel", self.channel, "must be channel index(es) >= 0", 0)

    def _check_output(self) -> None:
        if self.out is not None and self.out.suffix.lower() not in OUTPUT_SUFFIXES:
            raise SettingError(
                "out",
                str(self.out),
                "must end in .zarr, .tif or .tiff",
                str(self.out.with_suffix(".zarr")),
            )
        if not isinstance(self.measure, bool):
            raise SettingError("measure", self.measure, "must be True or False", True)

    def replace(self, **changes: Any) -> SegmentSettings:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> SegmentSettings:
        """Settings from keyword arguments; an unknown name is a ``TypeError`` naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(
                f"unknown segmentation setting(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known))}"
            )
        return cls(**kwargs)

    @property
    def wants_zarr(self) -> bool:
        return self.out is not None and self.out.suffix.lower() == ".zarr"


# --- the rules every front end shares ------------------------------------------------------


def is_accelerator(device_type: str) -> bool:
    """Whether a torch device type (``"cpu"``, ``"cuda"``, ``"mps"``) is an accelerator.

    Accelerators get batches, prefetching threads and larger chunks; the CPU runs every step
    in one thread (a second busy thread only preempts torch's workers).
    """
    return device_type != "cpu"


def storage_for(pixels: int, settings: SegmentSettings, distributed: bool = False) -> Storage:
    """Where the run keeps its scratch maps: ``"memory"`` (numpy) or ``"disk"`` (zarr).

    Disk for images above :data:`IN_MEMORY_MAX_PIXELS`, for zarr outputs (the labels are
    written chunk by chunk from the scratch) and on a cluster (workers share only storage).
    Refuses images above :data:`RETURN_MAX_PIXELS` without an output path.
    """
    if settings.out is None and pixels > RETURN_MAX_PIXELS:
        raise SettingError(
            "out",
            None,
            f"is needed: the image has {pixels / 1e6:.0f} MP, too large to return in memory",
            "labels.zarr",
        )
    if pixels > IN_MEMORY_MAX_PIXELS or settings.wants_zarr or distributed:
        return "disk"
    return "memory"


def output_format(pixels: int, fmt: str = "auto") -> str:
    """``"tif"`` or ``"zarr"``: ``auto`` writes OME-Zarr above :data:`IN_MEMORY_MAX_PIXELS`."""
    if fmt not in FORMATS:
        raise SettingError("format", fmt, f"is not one of {', '.join(FORMATS)}", "auto")
    if fmt == "auto":
        return "zarr" if pixels > IN_MEMORY_MAX_PIXELS else "tif"
    return fmt


def safe_stem(name: str) -> str:
    """A file-name stem from any text (a layer name): letters, digits, ``._-`` only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"


def label_path(folder: Path, stem: str, fmt: str, *, unique: bool = False) -> Path:
    """``folder/<stem>.<fmt>``; with ``unique``, ``<stem>-2``, ``-3``, ... while taken."""
    target, n = Path(folder) / f"{stem}.{fmt}", 1
    while unique and target.exists():
        n += 1
        target = Path(folder) / f"{stem}-{n}.{fmt}"
    return target


def companion_paths(out: Path, settings: SegmentSettings) -> dict[str, Path]:
    """The files written beside the labels ``out`` (``NAME.zarr`` / ``NAME.tif``), by kind.

    ``"objects"``: ``NAME_objects.csv`` (with ``measure``), ``"geojson"``: ``NAME.geojson``,
    ``"imagej"``: ``NAME_rois.zip`` (with ``export``). Empty when nothing is asked for.
    """
    out = Path(out)
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    names = {"objects": f"{stem}_objects.csv", "geojson": f"{stem}.geojson",
             "imagej": f"{stem}_rois.zip"}  # fmt: skip
    wanted = (("objects",) if settings.measure else ()) + settings.export
    return {kind: out.with_name(names[kind]) for kind in wanted}


def check_collisions(pairs: Iterable[tuple[Path, Path]]) -> None:
    """Refuse inputs that would share an output, before any work: ``(input, output)`` pairs.

    Outputs are compared without their format suffix (``a.tif`` and ``a.tiff`` both give
    ``a.*``), and an output may never replace its own input.
    """
    claimed: dict[Path, Path] = {}
    for source, target in pairs:
        if Path(target).absolute() == Path(source).absolute():
            raise ValueError(
                f"the output {target} would replace its input; choose another --out folder"
            )
        key = Path(target).absolute().with_suffix("")
        if key in claimed:
            first, second = claimed[key], Path(source)
            same = first.parent == second.parent
            raise ValueError(
                f"{first.name if same else first} and {second.name if same else second} would "
                f"both be written to {key}.*; rename one of them, segment them into different "
                "--out folders, or narrow --pattern"
            )
        claimed[key] = Path(source)
