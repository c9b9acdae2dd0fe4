"""batch_job: folders of images, bad files recorded, cancel + resume, summary CSV, CLI.

``segment_job`` is replaced by a small real segmenter (threshold + connected components, one
progress event per row band) so that these tests exercise the batch logic quickly; the model
path is covered by the inference tests.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_sa2net.inference.batch as batch_module
from napari_sa2net._progress import Progress, run_job
from napari_sa2net.inference.batch import SUMMARY_NAME, batch_job, find_images
from napari_sa2net.io import read_labels


@dataclass
class FakeResult:
    path: Path
    n_objects: int
    mean_area_px: float = 0.0
    provenance: dict = field(
        default_factory=lambda: {"diameter": {"estimated": 31.5}, "scale": 0.85}
    )


def threshold_segment_job(image, *, model, device, out, overwrite, bands=4, **kwargs):
    """Label connected bright regions of channel 0 into ``out``; one event per band of rows."""
    from scipy import ndimage

    from napari_sa2net.io import open_image, write_labels_tiff, write_ome_zarr_labels

    data = open_image(image).data[..., 0]
    step = -(-data.shape[0] // bands)
    parts = []
    for i in range(bands):
        parts.append(np.asarray(data[i * step : (i + 1) * step]) > 100)
        yield Progress("tile", i + 1, bands, 1, "predicting")
    labels, n = ndimage.label(np.concatenate(parts))
    writer = write_ome_zarr_labels if out.suffix == ".zarr" else write_labels_tiff
    writer(out, labels.astype(np.uint32), {"model": str(model), "source": str(image)}, overwrite)
    return FakeResult(out, n, float((labels > 0).sum()) / max(n, 1))


@pytest.fixture
def fake_segment(monkeypatch):
    calls: list[str] = []

    def job(image, settings):
        calls.append(str(image))
        return threshold_segment_job(
            image,
            model=settings.model,
            device=settings.device,
            out=settings.out,
            overwrite=settings.overwrite,
        )

    monkeypatch.setattr(batch_module, "_segment_job", lambda: job)
    monkeypatch.setattr(batch_module, "_load_model", lambda settings: settings)
    return calls


def _blobs(n: int, seed: int) -> np.ndarray:
    image = np.full((64, 80), 20, np.uint16)
    for k in range(n):
        y, x = 4 + 14 * (k % 4), 4 + 18 * (k // 4)
        image[y : y + 8, x : x + 10] = 500 + seed
    return image


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i, n in enumerate([2, 3, 5]):
        tifffile.imwrite(images / f"img{i}.tif", _blobs(n, i))
    (images / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    tifffile.imwrite(images / "stack.tif", np.zeros((6, 5, 40, 40), np.uint16))  # 4-D: no axes
    return images


def _summary(out):
    with open(out / SUMMARY_NAME, newline="") as table:
        return list(csv.DictReader(table))


def test_batch_writes_labels_and_records_bad_files(folder, tmp_path, fake_segment):
    out = tmp_path / "out"
    events: list[Progress] = []
    result = run_job(batch_job(folder, out, model="m", output_format="tif"), events.append)
    assert result.counts == {"done": 3, "failed": 2}
    by_name = {r.file: r for r in result.files}
    assert [by_name[f"img{i}.tif"].objects for i in range(3)] == [2, 3, 5]
    assert by_name["img1.tif"].mean_area_px == pytest.approx(80.0)
    assert "is the file complete" in by_name["broken.tif"].error
    assert "axes" in by_name["stack.tif"].error
    labels, meta = read_labels(out / "img2.tif")
    assert labels.shape == (64, 80) and int(labels.max()) == 5
    assert meta["model"] == "m" and meta["source"].endswith("img2.tif")
    rows = _summary(out)
    assert list(rows[0]) == ["file", "status", "objects", "mean_area_px", "seconds", "error",
                             "diameter_px", "scale"]  # fmt: skip
    done = [r for r in rows if r["status"] == "done"]
    assert {(r["diameter_px"], r["scale"]) for r in done} == {("31.5", "0.85")}
    assert [(r["file"], r["status"]) for r in rows] == [(r.file, r.status) for r in result.files]
    files = [e for e in events if e.stage == "file" and e.level == 0]
    assert files[-1].current == files[-1].total == 5
    assert any(e.stage == "tile" and e.level == 1 for e in events)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [SUMMARY_NAME, "img0.tif", "img1.tif", "img2.tif"]
    )


def test_cancel_after_first_file_then_resume(folder, tmp_path, fake_segment):
    out = tmp_path / "out"
    job = batch_job(folder, out, patterns="img*.tif", model="m", output_format="zarr")
    for event in job:
        if event.stage == "tile" and "img1" in fake_segment[-1] and event.current == 2:
            job.close()  # cancel in the middle of the second file
            break
    assert sorted(p.name for p in out.iterdir()) == ["img0.zarr", SUMMARY_NAME]
    rows = _summary(out)
    assert [(r["file"], r["status"]) for r in rows] == [
        ("img0.tif", "done"),
        ("img1.tif", "cancelled"),
    ]
    fake_segment.clear()
    result = run_job(batch_job(folder, out, patterns="img*.tif", model="m", output_format="zarr"))
    assert [(r.file, r.status) for r in result.files] == [
        ("img0.tif", "skipped"),
        ("img1.tif", "done"),
        ("img2.tif", "done"),
    ]
    assert [r.objects for r in result.files] == [2, 3, 5]  # the skipped file keeps its count
    assert result.files[0].diameter_px == 31.5 and result.files[0].scale == 0.85  # and size
    assert [s.rsplit("/", 1)[-1] for s in fake_segment] == ["img1.tif", "img2.tif"]
    assert np.asarray(read_labels(out / "img1.zarr")[0]).max() == 3


def test_existing_outputs_need_resume_or_overwrite(folder, tmp_path, fake_segment):
    out = tmp_path / "out"
    run_job(batch_job(folder, out, patterns="img0.tif", model="m", output_format="tif"))
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_job(batch_job(folder, out, patterns="img0.tif", model="m", resume=False))
    result = run_job(batch_job(folder, out, patterns="img0.tif", model="m", overwrite=True))
    assert [r.status for r in result.files] == ["done"]


def test_bad_arguments(folder, tmp_path, fake_segment):
    with pytest.raises(ValueError, match="separate --out"):
        run_job(batch_job(folder, folder, model="m"))
    with pytest.raises(ValueError, match="no files match"):
        run_job(batch_job(folder, tmp_path / "o", patterns="*.png", model="m"))
    with pytest.raises(ValueError, match="output_format"):
        run_job(batch_job(folder, tmp_path / "o", output_format="png", model="m"))
    tifffile.imwrite(folder / "img0.tiff", _blobs(1, 0))
    with pytest.raises(ValueError, match=r"img0.tif and img0.tiff would both be written"):
        run_job(batch_job(folder, tmp_path / "o", model="m"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_job(batch_job(tmp_path / "nope", tmp_path / "o", model="m"))


def test_find_images_recursive_skips_hidden_and_zarr_insides(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("x.tif", "a/y.tiff", "a/b/z.tif", ".hidden.tif", "a/.w.tif.partial-1-ab"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "s.zarr" / "0").mkdir(parents=True)
    (tmp_path / "s.zarr" / "0" / "c.tif").write_bytes(b"")
    flat = find_images(tmp_path)
    assert [p.name for p in flat] == ["x.tif"]
    deep = find_images(tmp_path, ("*.tif", "*.tiff", "*.zarr"), recursive=True)
    assert [p.relative_to(tmp_path).as_posix() for p in deep] == [
        "a/b/z.tif",
        "a/y.tiff",
        "s.zarr",
        "x.tif",
    ]


def test_cli_batch(folder, tmp_path, fake_segment, capsys):
    from napari_sa2net.cli import main

    out = tmp_path / "cli"
    code = main(
        [
            "batch",
            str(folder),
            "--out",
            str(out),
            "--pattern",
            "img*.tif",
            "--format",
            "tif",
            "--model",
            "m",
        ]
    )
    assert code == 0
    assert "3 done" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.tif")) == ["img0.tif", "img1.tif", "img2.tif"]
    code = main(
        [
            "batch",
            str(folder),
            "--out",
            str(out),
            "--pattern",
            "img*.tif",
            "--no-resume",
            "--model",
            "m",
        ]
    )
    assert code == 2
    assert "--overwrite" in capsys.readouterr().err


def test_real_segment_job_cancel_and_resume(folder, tmp_path):
    """The real segment_job with an untrained tiny model: outputs, bad files, cancel, resume."""
    from napari_sa2net import create_model

    model = create_model("sa2net-tiny", in_channels=1, num_classes=3)
    out = tmp_path / "real"
    job = batch_job(folder, out, model=model, device="cpu", output_format="tif")
    for event in job:
        if event.stage == "file" and event.message.startswith("img0.tif: done"):
            job.close()  # cancel after the first segmented file
            break
    finished = sorted(p.name for p in out.iterdir() if not p.name.startswith("sa2net"))
    assert finished == ["img0.tif"]
    result = run_job(batch_job(folder, out, model=model, device="cpu", output_format="tif"))
    status = {r.file: r.status for r in result.files}
    assert status == {
        "broken.tif": "failed",
        "img0.tif": "skipped",
        "img1.tif": "done",
        "img2.tif": "done",
        "stack.tif": "failed",
    }
    labels, meta = read_labels(out / "img1.tif")
    assert labels.shape == (64, 80) and meta["model"]["name"] == "sa2net-tiny"
    assert [p for p in out.iterdir() if p.name.startswith(".")] == []
