import numpy as np
import pytest
import tifffile

from napari_sa2net._progress import Progress
from napari_sa2net.cli import main
from napari_sa2net.cli._bar import drive
from napari_sa2net.cli.demo import mirror_tile, write_mosaic


def _job():
    yield Progress("epoch", 1, 2)
    yield Progress("batch", 3, 3, level=1)
    yield Progress("epoch", 2, 2)
    return 42


@pytest.mark.parametrize("quiet", [True, False])
def test_drive_returns_the_job_result(quiet):
    assert drive(_job(), quiet=quiet) == 42


def test_a_log_file_gets_plain_lines_not_bars():
    import io

    def job():
        yield Progress("file", 1, 2)
        for i in range(1, 101):
            yield Progress("tile", i, 100, level=1, metrics={"MP/s": 0.25})
        yield Progress("file", 2, 2)
        return "done"

    log = io.StringIO()  # not a terminal, as `sa2net segment ... 2> run.log`
    assert drive(job(), stream=log) == "done"
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    # every outer step; the inner stage when it starts and ends (30 s apart at most between)
    assert text.splitlines() == [
        "file 1/2",
        "  tile 1/100 MP/s=0.25",
        "  tile 100/100 MP/s=0.25",
        "file 2/2",
    ]


def test_a_long_inner_stage_writes_a_line_every_interval(monkeypatch):
    import io

    from napari_sa2net.cli import _bar

    clock = iter(range(0, 1000, 10))  # each event 10 s after the one before
    monkeypatch.setattr(_bar.time, "monotonic", lambda: next(clock))
    log = io.StringIO()
    printer = _bar.LineLog(log, every_s=30)
    for i in range(1, 11):
        printer(Progress("batch", i, 10, level=1))
    assert [line.split()[1] for line in log.getvalue().splitlines()] == [
        "1/10",
        "4/10",
        "7/10",
        "10/10",
    ]


def test_mirror_tile_is_continuous_across_the_mirror_line():
    image = np.arange(12).reshape(3, 4)
    out = mirror_tile(image, 0, 0, (6, 8))
    np.testing.assert_array_equal(out[:3, :4], image)
    np.testing.assert_array_equal(out[3:6, :4], image[::-1])
    np.testing.assert_array_equal(out[:3, 4:8], image[:, ::-1])


def test_write_mosaic_writes_a_tiled_tiff_of_the_asked_size(tmp_path):
    image = np.random.default_rng(0).integers(0, 4000, (100, 70)).astype(np.uint16)
    path = write_mosaic(image, tmp_path / "m.tif", 300, tile=128)
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].shape == (300, 300)
        assert tif.pages[0].is_tiled
        data = tif.asarray()
    np.testing.assert_array_equal(data, mirror_tile(image, 0, 0, (300, 300)))
    assert not list(tmp_path.glob(".*partial*"))


def test_demo_runs_end_to_end_on_a_tiny_checkpoint(tmp_path, capsys):
    from napari_sa2net.model import create_model, save_checkpoint

    checkpoint = tmp_path / "tiny.pt"
    save_checkpoint(create_model("sa2net-tiny", in_channels=1, num_classes=3), checkpoint)
    args = ["--out", str(tmp_path / "demo"), "--model", str(checkpoint), "--size", "512"]
    code = main(["demo", *args, "--device", "cpu", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "bundled sample:" in out and "512² mosaic:" in out
    assert (tmp_path / "demo" / "nuclei_sample_labels.tif").exists()
    assert (tmp_path / "demo" / "mosaic_512_labels.zarr").is_dir()


def test_demo_rejects_a_tiny_mosaic(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--size", "10"]) == 2
    assert "--size must be at least 256" in capsys.readouterr().err


def test_record_keeps_a_line_per_finished_epoch_once(capsys):
    import io

    def job():
        yield Progress("epoch", 1, 2, metrics={"val_f1": 0.5})
        yield Progress("batch", 1, 1, level=1, metrics={"loss": 2.0})
        yield Progress("epoch", 2, 2, metrics={"val_f1": 0.75})
        return "done"

    assert drive(job(), quiet=True, record=True) == "done"
    assert capsys.readouterr().out.splitlines() == ["epoch 1: val_f1 0.5", "epoch 2: val_f1 0.75"]
    log = io.StringIO()  # a log file has the epochs' figures in its own lines: not twice
    assert drive(job(), stream=log, record=True) == "done"
    assert capsys.readouterr().out == ""
    assert [line for line in log.getvalue().splitlines() if "val_f1" in line] == [
        "epoch 1/2 val_f1=0.5",
        "epoch 2/2 val_f1=0.75",
    ]
