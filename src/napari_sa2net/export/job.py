"""``export_job``: a model in, a bioimage.io package (``.zip``) out, as a progress-yielding job.

The CLI (``sa2net export``) and the finetune widget's "Export for bioimage.io…" button both run
this generator; the package is written atomically (a stopped export leaves no file).
"""

from __future__ import annotations

import copy
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._progress import Job, Progress, run_job
from ..io.atomic import atomic_path, check_writable
from .facts import FixedNormalization, PackageFacts

#: Sample images shipped with the package, by channel count: the default test images.
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "_sample_data"
SAMPLES = {1: "nuclei_fluo.tif", 3: "he_region.tif"}

#: Smallest test tensor side (holds a few nuclei of 20-36 px); larger when the halo needs it.
MIN_TEST_SIZE = 256

#: The test tensors come from the central region of at most this side of a (large) test image.
MAX_TEST_REGION = 2048

STEPS = 4


@dataclass(frozen=True)
class ExportSettings:
    """How to export; built once from the caller's keywords and checked.

    Parameters
    ----------
    out : Path
        The package file (``.zip``).
    test_image : Path, optional
        Image the test tensors and cover are cropped from (default: the bundled sample with the
        model's channel count).
    test_size : int, optional
        Side of the square test tensors, a multiple of 16 (default: 256, or more for a large halo).
    halo : int, optional
        Output halo in pixels, a multiple of 8 (default: the model's measured reach).
    fixed_normalization : Path, optional
        Store this image's whole-image percentiles as fixed values instead of per-sample ones.
    authors : tuple of str
        Authors of the package (default: the napari-sa2net developers for a bundled model).
    overwrite : bool
        Replace an existing package.
    """

    out: Path
    test_image: Path | None = None
    test_size: int | None = None
    halo: int | None = None
    fixed_normalization: Path | None = None
    authors: tuple[str, ...] = ()
    overwrite: bool = False

    def check(self) -> None:
        if self.out.suffix.lower() != ".zip":
            raise ValueError(f"the package {self.out} must end in .zip, e.g. model.zip")
        if self.test_size is not None and (self.test_size < 16 or self.test_size % 16):
            raise ValueError(f"test size must be a multiple of 16, got {self.test_size}")
        if self.halo is not None and (self.halo < 8 or self.halo % 8):
            raise ValueError(f"halo must be a positive multiple of 8 pixels, got {self.halo}")
        for path in (self.test_image, self.fixed_normalization):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"image {path} does not exist; check the path")


@dataclass(frozen=True)
class ExportResult:
    """The written package: path, name, size in bytes, seconds, halo and normalization kind."""

    path: Path
    name: str
    size_bytes: int
    seconds: float
    halo: int
    normalization: str


def _require_spec() -> None:
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError as err:
        raise ValueError(
            f"bioimage.io export needs bioimageio.spec ({err}); install it with "
            "pip install 'napari-sa2net[bioimageio]'"
        ) from err


def _load(model: Any) -> tuple[Any, str | None, str]:
    """``(SA2Net on the CPU, bundled name or None, a label)`` of a name, path or model."""
    from ..model import BUNDLED_DIR, SA2Net, load_model, resolve_checkpoint_path

    if isinstance(model, SA2Net):  # a copy: the caller's model stays on its device and mode
        net, path = copy.deepcopy(model), model.checkpoint_path
    else:
        path = resolve_checkpoint_path(model)
        net = load_model(path)
    bundled = path.stem if path is not None and path.resolve().parent == BUNDLED_DIR else None
    label = bundled or (Path(path).stem if path is not None else net.config.name)
    return net.cpu().eval(), bundled, label


def _open(path: Path, channels: int) -> Any:
    """The lazy ``YXC`` image at ``path`` (what ``io.open_image`` reads), channels checked."""
    from ..io import open_image

    data = open_image(path).data
    if data.shape[-1] != channels:
        raise ValueError(
            f"image {path} has {data.shape[-1]} channel(s), the model takes {channels}; pass an "
            "image of the kind the model was trained on"
        )
    return data


def _test_image(settings: ExportSettings, channels: int) -> tuple[np.ndarray, Path]:
    """The test image in memory (its central ``MAX_TEST_REGION``² at most) and its path."""
    path = settings.test_image
    if path is None:
        if channels not in SAMPLES:
            raise ValueError(
                f"no sample image has {channels} channels; pass a test image (--test-image)"
            )
        path = SAMPLE_DIR / SAMPLES[channels]
    data = _open(Path(path), channels)
    height, width = data.shape[:2]
    y0, x0 = max(0, (height - MAX_TEST_REGION) // 2), max(0, (width - MAX_TEST_REGION) // 2)
    region = data[y0 : y0 + MAX_TEST_REGION, x0 : x0 + MAX_TEST_REGION]
    return np.asarray(region.compute() if hasattr(region, "compute") else region), Path(path)


def _fixed(settings: ExportSettings, net: Any) -> FixedNormalization | None:
    """Whole-image percentiles of the reference image (a slide is read subsampled, lazily)."""
    if settings.fixed_normalization is None:
        return None
    path = Path(settings.fixed_normalization)
    low, high = net.normalization.statistics(_open(path, net.in_channels))
    return FixedNormalization(path.name, tuple(map(float, low)), tuple(map(float, high)))


def _parent_id(metadata: dict[str, Any]) -> str | None:
    parent = metadata.get("parent")
    if not parent:
        return None
    linked = (parent.get("bioimageio") or {}).get("id")
    slug = re.sub(r"[^a-z0-9_.-]+", "-", str(parent.get("name", "model")).lower()).strip("-.")
    return linked or f"napari-sa2net/{slug or 'model'}"


def _origin(bundled: str | None, metadata: dict[str, Any]) -> str | None:
    """The bundled model the weights are or descend from (its data notices travel with them)."""
    parent = metadata.get("parent") or {}
    inherited = metadata.get("bundled_origin") or (
        parent.get("name") if parent.get("bundled") else None
    )
    return bundled or inherited


def _notices(origin: str | None, test_image: Path) -> tuple[Path, ...]:
    from ..model import BUNDLED_DIR

    notices = sorted(BUNDLED_DIR.glob("LICENSE-*.txt")) if origin else []
    sample_notice = test_image.with_suffix(".txt")
    if test_image.parent == SAMPLE_DIR and sample_notice.is_file():
        notices.append(sample_notice)
    return tuple(notices)


def _package_name(label: str) -> str:
    """``SA2-Net <label>`` in the characters and length the spec allows for a name."""
    return re.sub(r"[^A-Za-z0-9_+\- ()]+", "-", f"SA2-Net {label}")[:64]


def _names(net: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(channel names, class names)`` of the input and output tensors."""
    channels = {1: ("intensity",), 3: ("red", "green", "blue")}.get(
        net.in_channels, tuple(f"channel{i}" for i in range(net.in_channels))
    )
    classes = (
        ("background", "interior", "boundary")
        if net.num_classes == 3
        else ("foreground",)
        if net.num_classes == 1
        else tuple(f"class{i}" for i in range(net.num_classes))
    )
    return channels, classes + (("centre",) if getattr(net, "centre", False) else ())


def _facts(
    net: Any, bundled: str | None, label: str, halo: int, settings: ExportSettings, test_path: Path
) -> PackageFacts:
    """Everything the card and the description say about ``net``, before files are written."""
    from ..model.checkpoints import checkpoint_dict

    record = checkpoint_dict(net)  # JSON-safe metadata and the configuration, as saved
    metadata = record["metadata"]
    origin = _origin(bundled, metadata)
    if origin:  # kept in the package, so a re-export or a finetuned child keeps the notices
        metadata["bundled_origin"] = origin
    mode = "binary" if net.num_classes == 1 else "instance"
    channels, classes = _names(net)
    min_size = 2 * halo + 16
    test_size = settings.test_size or max(MIN_TEST_SIZE, min_size)
    if test_size < min_size:
        raise ValueError(f"test size {test_size} is below the {min_size} px the halo needs")
    kind = "nuclei instance segmentation" if mode == "instance" else "binary segmentation"
    return PackageFacts(
        name=_package_name(label),
        description=(
            f"SA2-Net ({net.config.name}, {net.in_channels} channel(s) in) for {kind} in 2-D "
            f"microscopy, exported by napari-sa2net from `{label}`. Outputs per-pixel "
            f"probabilities ({', '.join(classes)}); see the README for how napari-sa2net "
            "derives instances from them."
        ),
        source=label, origin=origin, mode=mode, in_channels=net.in_channels,
        class_names=classes, channel_names=channels, min_size=min_size, halo=halo,
        normalization=net.normalization.to_dict(), metadata=metadata,
        checkpoint=record["config"],
        test_image=test_path.name, test_size=test_size, fixed=_fixed(settings, net),
        parent_id=_parent_id(metadata), notices=_notices(origin, test_path),
        authors=settings.authors or (
            ("napari-sa2net developers",) if bundled else ("not given (napari-sa2net export)",)
        ),
    )  # fmt: skip


def export_job(model: Any, out: str | Path, **options: Any) -> Job[ExportResult]:
    """Export ``model`` as a bioimage.io package (model format 0.5) at ``out``.

    Parameters
    ----------
    model : str, Path or SA2Net
        A bundled model name, a checkpoint (``.pt``, finetuned ones too) or package (``.zip``),
        or a loaded model.
    out : str or Path
        The ``.zip`` to write (atomically).
    **options
        Fields of :class:`ExportSettings`: ``test_image``, ``test_size``, ``halo``,
        ``fixed_normalization``, ``authors``, ``overwrite``.

    Yields
    ------
    Progress
        ``"export"`` events (level 0), one per step.
    """
    from ..model import suggested_halo
    from .bioimageio import model_description, save_package
    from .files import busiest_crop, write_files

    settings = ExportSettings(out=Path(out).expanduser(), **options)
    settings.check()
    check_writable(settings.out, settings.overwrite)
    _require_spec()
    started = time.monotonic()
    yield Progress("export", 0, STEPS, 0, "loading the model")
    net, bundled, label = _load(model)
    yield Progress("export", 1, STEPS, 0, "measuring the model's reach (halo)")
    halo = settings.halo or suggested_halo(net)
    image, test_path = _test_image(settings, net.in_channels)
    facts = _facts(net, bundled, label, halo, settings, test_path)
    yield Progress("export", 2, STEPS, 0, "test tensors, cover, weights, TorchScript")
    with tempfile.TemporaryDirectory(prefix="sa2net-export-") as scratch:
        crop = busiest_crop(image, facts.test_size)
        facts, files = write_files(net, crop, facts, Path(scratch))
        yield Progress("export", 3, STEPS, 0, "validating and writing the package")
        description = model_description(net, facts, files)
        with atomic_path(settings.out, overwrite=settings.overwrite) as partial:
            save_package(description, partial)
    yield Progress("export", 4, STEPS, 0, f"wrote {settings.out}")
    return ExportResult(
        path=settings.out,
        name=facts.name,
        size_bytes=settings.out.stat().st_size,
        seconds=round(time.monotonic() - started, 1),
        halo=halo,
        normalization="fixed scale_linear" if facts.fixed else "per-sample scale_range",
    )


def export_bioimageio(model: Any, out: str | Path, **options: Any) -> ExportResult:
    """:func:`export_job` run to completion (no progress display)."""
    return run_job(export_job(model, out, **options))
