"""Segment every image of a folder: resumable, one bad file never stops the batch.

For each input file ``batch_job`` writes ``OUTPUT_DIR/<relative folder>/<stem>.tif`` or
``.zarr`` atomically (so a file counts as finished exactly when its output exists), and
rewrites ``OUTPUT_DIR/sa2net-summary.csv`` after every file. A rerun with ``resume=True``
skips the files whose output exists and redoes the one that was interrupted, from scratch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .._progress import Job, Progress
from .settings import (
    FORMATS,
    SegmentSettings,
    check_collisions,
    companion_paths,
    label_path,
    output_format,
)

__all__ = ["SUMMARY_NAME", "BatchResult", "FileRecord", "batch_job", "find_images"]

DEFAULT_PATTERNS = ("*.tif", "*.tiff")
SUMMARY_NAME = "sa2net-summary.csv"


@dataclass
class FileRecord:
    """One row of the summary: ``file`` is relative to the input folder."""

    file: str
    status: str  # "segmenting", "done", "skipped" (output existed), "failed", "cancelled"
    objects: int | None = None
    mean_area_px: float | None = None
    seconds: float = 0.0
    error: str = ""
    #: What the size estimate measured (``diameter="auto"``) and the scale the file ran at.
    diameter_px: float | None = None
    scale: float | None = None
    output: Path | None = field(default=None, compare=False)


#: Columns of the summary CSV (every field of FileRecord but the output path).
COLUMNS = tuple(f.name for f in fields(FileRecord))[:-1]


def find_images(
    folder: str | Path, patterns: str | Sequence[str] = DEFAULT_PATTERNS, recursive: bool = False
) -> list[Path]:
    """Inputs of a batch: see :func:`napari_sa2net.io.listing.find_files`."""
    from ..io.listing import find_files

    return find_files(folder, patterns, recursive)


def output_path(root: Path, path: Path, output_dir: Path, fmt: str) -> Path:
    """``output_dir/<folder of path relative to root>/<stem>.<fmt>`` (see ``label_path``)."""
    from ..io.source import stem_of

    return label_path(output_dir / path.relative_to(root).parent, stem_of(path), fmt)


def write_summary(path: Path, records: Sequence[FileRecord]) -> None:
    """Write the summary CSV atomically (readers never see a half-written table)."""
    from ..io.tables import write_table

    write_table(path, COLUMNS, (astuple(r)[: len(COLUMNS)] for r in records))


def read_summary(path: Path) -> dict[str, FileRecord]:
    """Records of an earlier run by file name (empty when there is no readable summary)."""
    from ..io.tables import read_table

    records = {}
    for row in read_table(path):
        try:
            objects = int(row["objects"]) if row.get("objects") else None
            area = float(row["mean_area_px"]) if row.get("mean_area_px") else None
            seconds = float(row.get("seconds") or 0)
            diameter = float(row["diameter_px"]) if row.get("diameter_px") else None
            scale = float(row["scale"]) if row.get("scale") else None
            records[row["file"]] = FileRecord(
                row["file"], row["status"], objects, area, seconds, row.get("error") or "",
                diameter, scale,
            )  # fmt: skip
        except (KeyError, ValueError):
            continue  # a row we cannot parse is redone, not trusted
    return records


@dataclass
class BatchResult:
    """What a batch did: one record per input file and the summary CSV."""

    files: list[FileRecord]
    summary_path: Path
    output_dir: Path

    @property
    def counts(self) -> dict[str, int]:
        """Number of files per status (``done``, ``skipped``, ``failed``)."""
        counts: dict[str, int] = {}
        for record in self.files:
            counts[record.status] = counts.get(record.status, 0) + 1
        return counts


@dataclass
class _Batch:
    """The settings shared by every file of one run."""

    root: Path
    output_dir: Path
    output_format: str
    overwrite: bool
    settings: SegmentSettings


def _check_arguments(input_dir: Path, output_dir: Path, output_format: str) -> None:
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input folder {input_dir} does not exist or is not a folder")
    if output_format not in FORMATS:
        raise ValueError(f"output_format {output_format!r} is not one of {', '.join(FORMATS)}")
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output {output_dir} is a file; pass a folder for --out")


def _load_model(settings: SegmentSettings) -> SegmentSettings:
    """The model loaded once for the whole batch (a wrong name fails before any image)."""
    from .plan import preload

    return preload(settings)


def _segment_job() -> Any:
    """The per-image job (one seam, so tests can substitute a small segmenter)."""
    from . import segment_job

    return segment_job


def _segment(path: Path, target: Path, batch: _Batch) -> Job[Any]:
    """Run ``segment_job`` on one file into ``target``, forwarding its events at level 1.

    Labels left without the files asked for beside them (an earlier run without
    ``measure``) are replaced: that file was not finished.
    """
    overwrite = batch.overwrite or _unfinished(path, batch)
    inner = _segment_job()(str(path), batch.settings.replace(out=target, overwrite=overwrite))
    try:
        while True:
            try:
                event = next(inner)
            except StopIteration as stop:
                return stop.value
            yield replace(event, level=1)
    finally:
        inner.close()  # a cancelled batch cancels the file in progress: no partial output


def _process(path: Path, name: str, batch: _Batch) -> Job[FileRecord]:
    """Segment one file into its output; errors become a ``failed`` record."""
    from .planes import label_pixels

    started = time.perf_counter()
    try:
        fmt = batch.output_format
        if fmt == "auto":
            fmt = output_format(label_pixels(path, batch.settings), fmt)
        target = output_path(batch.root, path, batch.output_dir, fmt)
        result = yield from _segment(path, target, batch)
        objects = int(result.n_objects)
        mean_area = float(result.mean_area_px)
        provenance = getattr(result, "provenance", None) or {}
        diameter = (provenance.get("diameter") or {}).get("estimated")
        scale = None if provenance.get("scale") is None else round(float(provenance["scale"]), 4)
    except Exception as err:  # a bad file is recorded and skipped, never fatal
        seconds = time.perf_counter() - started
        return FileRecord(name, "failed", None, None, seconds, f"{type(err).__name__}: {err}")
    seconds = time.perf_counter() - started
    return FileRecord(name, "done", objects, mean_area, seconds, "", diameter, scale, target)


def _existing_output(path: Path, batch: _Batch) -> Path | None:
    """The finished output of ``path``: its labels and every file asked for beside them."""
    for fmt in ("tif", "zarr"):
        target = output_path(batch.root, path, batch.output_dir, fmt)
        companions = companion_paths(target, batch.settings).values()
        if target.exists() and all(c.exists() for c in companions):
            return target
    return None


def _unfinished(path: Path, batch: _Batch) -> bool:
    """Whether ``path`` has labels without the files asked for beside them (measure later)."""
    return _existing_output(path, batch) is None and any(
        output_path(batch.root, path, batch.output_dir, fmt).exists() for fmt in ("tif", "zarr")
    )


def _file_event(index: int, total: int, record: FileRecord) -> Progress:
    """A level-0 ``"file"`` event; its ``payload`` is the file's :class:`FileRecord`."""
    text = {
        "segmenting": "segmenting",
        "done": f"done, {record.objects} objects",
        "skipped": "skipped (output exists)",
        "failed": f"failed: {record.error}",
        "cancelled": "cancelled",
    }[record.status]
    metrics = {"seconds": record.seconds}
    if record.objects is not None:
        metrics["objects"] = float(record.objects)
    return Progress("file", index, total, 0, f"{record.file}: {text}", metrics, payload=record)


def _prepare(
    input_dir: Path,
    output_dir: Path,
    patterns: str | Sequence[str],
    recursive: bool,
    output_format: str,
) -> list[Path]:
    """Validate the folders and list the inputs (outputs inside the input folder excluded)."""
    _check_arguments(input_dir, output_dir, output_format)
    if output_dir.resolve() == input_dir.resolve():
        raise ValueError(
            f"output folder {output_dir} is the input folder; choose a separate --out folder "
            "so that labels never replace or mix with the images"
        )
    out = output_dir.resolve()
    files = [
        p for p in find_images(input_dir, patterns, recursive) if out not in p.resolve().parents
    ]
    if not files:
        where = f"{input_dir}{' or its subfolders' if recursive else ''}"
        raise ValueError(f"no files match {patterns!r} in {where}; check --pattern")
    # a.tif and a.tiff would share an output: refused before any work
    check_collisions((p, output_path(input_dir, p, output_dir, "tif")) for p in files)
    return files


def _skip_record(name: str, target: Path, previous: Mapping[str, FileRecord]) -> FileRecord:
    old = previous.get(name)
    if old is None:
        return FileRecord(name, "skipped", None, None, 0.0, "", output=target)
    return FileRecord(name, "skipped", old.objects, old.mean_area_px, 0.0, "", old.diameter_px,
                      old.scale, target)  # fmt: skip


def batch_job(
    input_dir: str | Path,
    output_dir: str | Path,
    settings: SegmentSettings | None = None,
    *,
    patterns: str | Sequence[str] = DEFAULT_PATTERNS,
    recursive: bool = False,
    output_format: str = "auto",
    resume: bool = True,
    overwrite: bool = False,
    **setting_kwargs: Any,
) -> Job[BatchResult]:
    """Segment every matching image of a folder, yielding progress per file and per tile.

    The arguments are checked (folders, patterns, name collisions, every setting) when the job
    is created, before any model loads or file is read.

    Parameters
    ----------
    input_dir, output_dir : path-like
        Folder of images; folder for ``<stem>.tif`` / ``<stem>.zarr`` labels (subfolders
        mirrored when ``recursive``) and ``sa2net-summary.csv`` (columns ``file, status,
        objects, mean_area_px, seconds, error, diameter_px, scale``: the size estimate's
        nucleus diameter and the scale the file ran at), rewritten atomically after every
        file.
    settings : SegmentSettings, optional
        How every file is segmented (model, device, tile, thresholds, ...); the model is
        loaded once. Or give the fields as keywords (they override ``settings``); ``out`` and
        ``overwrite`` are set per file.
    patterns : str or sequence of str
        Glob patterns of the inputs, default ``*.tif`` and ``*.tiff``.
    recursive : bool
        Also search subfolders.
    output_format : {"auto", "tif", "zarr"}
        ``auto``: OME-Zarr above 4096² pixels, label TIFF otherwise
        (:func:`.settings.output_format`).
    resume : bool
        Skip files whose output exists (their earlier figures are kept in the summary).
    overwrite : bool
        Redo and replace existing outputs.

    Yields
    ------
    Progress
        ``stage="file"``, level 0, whose ``payload`` is the file's :class:`FileRecord` (status
        ``"segmenting"``, then ``"done"``, ``"skipped"`` or ``"failed"``), with metrics
        ``objects``, ``seconds``; the events of ``segment_job`` one level deeper.

    Returns
    -------
    BatchResult
        A record per file. Unreadable or unsuitable files are ``failed`` with their error and
        never stop the batch; closing the generator stops after the current tile batch and
        leaves no partial output (the file is redone by the next run).
    """
    settings = settings or SegmentSettings()
    settings = settings.replace(**setting_kwargs) if setting_kwargs else settings
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    files = _prepare(input_dir, output_dir, patterns, recursive, output_format)
    batch = _Batch(input_dir, output_dir, output_format, overwrite, settings)
    existing = {path: _existing_output(path, batch) for path in files}
    if not resume and not overwrite and any(existing.values()):
        found = sum(t is not None for t in existing.values())
        raise FileExistsError(
            f"{found} output(s) already exist in {output_dir}; pass overwrite=True "
            "(--overwrite) to replace them or resume=True (drop --no-resume) to skip them"
        )
    return _run(files, batch, existing, resume)


def _run(files: list[Path], batch: _Batch, existing: dict, resume: bool) -> Job[BatchResult]:
    from ..io.atomic import remove_stale_partials

    batch.output_dir.mkdir(parents=True, exist_ok=True)
    summary = batch.output_dir / SUMMARY_NAME
    for folder in {output_path(batch.root, p, batch.output_dir, "tif").parent for p in files}:
        if folder.is_dir():
            remove_stale_partials(folder)
    previous = read_summary(summary) if resume else {}
    batch.settings = _load_model(batch.settings)
    records: list[FileRecord] = []
    total = len(files)
    for index, path in enumerate(files):
        name = path.relative_to(batch.root).as_posix()
        if resume and not batch.overwrite and existing[path] is not None:
            record = _skip_record(name, existing[path], previous)
        else:
            yield _file_event(index, total, FileRecord(name, "segmenting"))
            try:
                record = yield from _process(path, name, batch)
            except BaseException:  # cancelled (generator closed) or interrupted
                records.append(FileRecord(name, "cancelled", error="stopped by the user"))
                write_summary(summary, records)
                raise
        records.append(record)
        write_summary(summary, records)
        yield _file_event(index + 1, total, record)
    return BatchResult(records, summary, batch.output_dir)
