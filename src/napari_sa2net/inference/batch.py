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

__all__ = ["SUMMARY_NAME", "BatchResult", "FileRecord", "batch_job", "find_images"]

#: ``output_format="auto"`` writes OME-Zarr above this many pixels, a label TIFF below.
AUTO_ZARR_ABOVE = 4096 * 4096
FORMATS = ("auto", "tif", "zarr")
DEFAULT_PATTERNS = ("*.tif", "*.tiff")
SUMMARY_NAME = "sa2net-summary.csv"


@dataclass
class FileRecord:
    """One row of the summary: ``file`` is relative to the input folder."""

    file: str
    status: str  # "done", "skipped" (output existed), "failed", "cancelled"
    objects: int | None = None
    mean_area_px: float | None = None
    seconds: float = 0.0
    error: str = ""
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
    """``output_dir/<folder of path relative to root>/<stem>.<fmt>``."""
    from ..io.source import stem_of

    relative = path.relative_to(root).parent
    return output_dir / relative / f"{stem_of(path)}.{fmt}"


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
            records[row["file"]] = FileRecord(
                row["file"], row["status"], objects, area, seconds, row.get("error") or ""
            )
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
    model: Any
    device: Any
    overwrite: bool
    segment_kwargs: Mapping[str, Any] = field(default_factory=dict)


def _check_arguments(input_dir: Path, output_dir: Path, output_format: str) -> None:
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input folder {input_dir} does not exist or is not a folder")
    if output_format not in FORMATS:
        raise ValueError(f"output_format {output_format!r} is not one of {', '.join(FORMATS)}")
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output {output_dir} is a file; pass a folder for --out")


def _load_model(model: Any, device: Any) -> Any:
    """Load the model once for the whole batch (a wrong name or file fails before any image).

    The loaded model keeps the name and hash ``segment_job`` would record for the name or path,
    so the provenance of every output is the same as for a single ``sa2net segment``.
    """
    from ..model import DEFAULT_MODEL, resolve_device
    from .sizing import resolve_model

    net, info = resolve_model(DEFAULT_MODEL if model is None else model, resolve_device(device))
    net.metadata.update({key: value for key, value in info.items() if value is not None})
    return net


def _mean_area(path: Path, objects: int) -> float:
    """Mean object area in pixels, counted chunk by chunk from the written labels."""
    from ..io import read_labels

    if not objects:
        return 0.0
    labels, _ = read_labels(path)
    return float((labels > 0).sum().compute()) / objects


def _segment_job() -> Any:
    """The per-image job (one seam, so tests can substitute a small segmenter)."""
    from . import segment_job

    return segment_job


def _segment(path: Path, target: Path, batch: _Batch) -> Job[Any]:
    """Run ``segment_job`` on one file into ``target``, forwarding its events at level 1."""
    inner = _segment_job()(
        str(path),
        model=batch.model,
        device=batch.device,
        out=target,
        overwrite=batch.overwrite,
        **batch.segment_kwargs,
    )
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
    from ..io import open_image

    started = time.perf_counter()
    try:
        fmt = batch.output_format
        if fmt == "auto":
            height, width, _ = open_image(path, channel=batch.segment_kwargs.get("channel")).shape
            fmt = "zarr" if height * width > AUTO_ZARR_ABOVE else "tif"
        target = output_path(batch.root, path, batch.output_dir, fmt)
        result = yield from _segment(path, target, batch)
        objects = int(result.n_objects)
        mean_area = _mean_area(target, objects)
    except Exception as err:  # a bad file is recorded and skipped, never fatal
        seconds = time.perf_counter() - started
        return FileRecord(name, "failed", None, None, seconds, f"{type(err).__name__}: {err}")
    seconds = time.perf_counter() - started
    return FileRecord(name, "done", objects, mean_area, seconds, "", target)


def _existing_output(path: Path, batch: _Batch) -> Path | None:
    for fmt in ("tif", "zarr"):
        target = output_path(batch.root, path, batch.output_dir, fmt)
        if target.exists():
            return target
    return None


def _file_event(index: int, total: int, record: FileRecord) -> Progress:
    text = {
        "done": f"done, {record.objects} objects",
        "skipped": "skipped (output exists)",
        "failed": f"failed: {record.error}",
    }[record.status]
    metrics = {"seconds": record.seconds}
    if record.objects is not None:
        metrics["objects"] = float(record.objects)
    return Progress("file", index, total, 0, f"{record.file}: {text}", metrics)


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
    _check_collisions(files, input_dir, output_dir)
    return files


def _check_collisions(files: list[Path], root: Path, output_dir: Path) -> None:
    """Refuse inputs that would share an output (``a.tif`` and ``a.tiff``)."""
    claimed: dict[Path, Path] = {}
    for path in files:
        stem = output_path(root, path, output_dir, "tif").with_suffix("")
        if stem in claimed:
            raise ValueError(
                f"{claimed[stem].name} and {path.name} would both be written to {stem}.*; "
                "rename one of them or narrow --pattern"
            )
        claimed[stem] = path


def _skip_record(name: str, target: Path, previous: Mapping[str, FileRecord]) -> FileRecord:
    old = previous.get(name)
    objects, area = (old.objects, old.mean_area_px) if old is not None else (None, None)
    return FileRecord(name, "skipped", objects, area, 0.0, "", target)


def batch_job(
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    patterns: str | Sequence[str] = DEFAULT_PATTERNS,
    recursive: bool = False,
    output_format: str = "auto",
    model: Any = None,
    device: Any = "auto",
    resume: bool = True,
    overwrite: bool = False,
    **segment_kwargs: Any,
) -> Job[BatchResult]:
    """Segment every matching image of a folder, yielding progress per file and per tile.

    Parameters
    ----------
    input_dir, output_dir : path-like
        Folder of images; folder for ``<stem>.tif`` / ``<stem>.zarr`` labels (subfolders
        mirrored when ``recursive``) and ``sa2net-summary.csv`` (columns ``file, status,
        objects, mean_area_px, seconds, error``), rewritten atomically after every file.
    patterns : str or sequence of str
        Glob patterns of the inputs, default ``*.tif`` and ``*.tiff``.
    recursive : bool
        Also search subfolders.
    output_format : {"auto", "tif", "zarr"}
        ``auto``: OME-Zarr above 4096² pixels, label TIFF otherwise.
    model : str, Path or SA2Net, optional
        Bundled model name, checkpoint or model; loaded once. Default: the bundled default.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ... passed on to ``segment_job``.
    resume : bool
        Skip files whose output exists (their earlier figures are kept in the summary).
    overwrite : bool
        Redo and replace existing outputs.
    **segment_kwargs
        Passed to :func:`napari_sa2net.inference.segment_job` (tile, thresholds, channel, ...).

    Yields
    ------
    Progress
        ``stage="file"``, level 0, message ``"<file>: segmenting" | ": done, N objects" |
        ": skipped (output exists)" | ": failed: <error>"``, metrics ``objects``, ``seconds``;
        the events of ``segment_job`` one level deeper.

    Returns
    -------
    BatchResult
        A record per file. Unreadable or unsuitable files are ``failed`` with their error and
        never stop the batch; closing the generator stops after the current tile batch and
        leaves no partial output (the file is redone by the next run).
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    files = _prepare(input_dir, output_dir, patterns, recursive, output_format)
    batch = _Batch(input_dir, output_dir, output_format, model, device, overwrite, segment_kwargs)
    existing = {path: _existing_output(path, batch) for path in files}
    if not resume and not overwrite and any(existing.values()):
        found = sum(t is not None for t in existing.values())
        raise FileExistsError(
            f"{found} output(s) already exist in {output_dir}; pass overwrite=True "
            "(--overwrite) to replace them or resume=True (drop --no-resume) to skip them"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = output_dir / SUMMARY_NAME
    return (yield from _run(files, batch, existing, resume, summary))


def _run(
    files: list[Path], batch: _Batch, existing: dict, resume: bool, summary: Path
) -> Job[BatchResult]:
    from ..io.atomic import remove_stale_partials

    for folder in {output_path(batch.root, p, batch.output_dir, "tif").parent for p in files}:
        if folder.is_dir():
            remove_stale_partials(folder)
    previous = read_summary(summary) if resume else {}
    batch.model = _load_model(batch.model, batch.device)
    records: list[FileRecord] = []
    total = len(files)
    for index, path in enumerate(files):
        name = path.relative_to(batch.root).as_posix()
        if resume and not batch.overwrite and existing[path] is not None:
            record = _skip_record(name, existing[path], previous)
        else:
            yield Progress("file", index, total, 0, f"{name}: segmenting")
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
