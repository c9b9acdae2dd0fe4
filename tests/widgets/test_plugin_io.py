"""Reader, writer, sample data and manifest of the napari plugin (no viewer needed)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sa2net import _reader, _sample_data, _writer

pytestmark = pytest.mark.gui


def blobs(shape: tuple[int, int] = (96, 80)) -> np.ndarray:
    labels = np.zeros(shape, np.uint32)
    labels[10:30, 12:40] = 3
    labels[50:70, 5:25] = 7
    return labels


@pytest.mark.parametrize("suffix", [".zarr", ".tif"])
def test_writer_then_reader_round_trip(tmp_path, suffix):
    labels = blobs()
    meta = {"name": "nuclei labels", "scale": (0.5, 0.25), "metadata": {}}
    target = tmp_path / f"out{suffix}"
    written = _writer.write_labels(str(target), labels, meta)
    assert written == [str(target)]
    reader = _reader.get_reader(str(target))
    assert reader is _reader.read_sa2net_labels
    [(data, layer_meta, kind)] = reader(str(target))
    assert kind == "labels"
    level0 = data[0] if layer_meta.get("multiscale") else data
    np.testing.assert_array_equal(np.asarray(level0), labels)
    assert layer_meta["scale"] == pytest.approx((0.5, 0.25))
    assert "saved_from" in layer_meta["metadata"]["napari_sa2net"]


def test_writer_keeps_big_labels_lazy_and_writes_a_pyramid(tmp_path):
    da = pytest.importorskip("dask.array")
    labels = da.from_array(np.tile(blobs((128, 128)), (12, 12)), chunks=512)  # 1536²
    [path] = _writer.write_labels(str(tmp_path / "big.zarr"), labels, {"name": "big"})
    [(data, meta, _)] = _reader.read_sa2net_labels(path)
    assert meta["multiscale"] and len(data) >= 2
    assert isinstance(data[0], da.Array) and data[0].shape == (1536, 1536)
    assert int(data[1][64, 64]) == int(labels[128, 128])


def test_reader_declines_files_that_are_not_ours(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    foreign = tmp_path / "foreign.tif"
    tifffile.imwrite(foreign, blobs())
    (tmp_path / "other.zarr").mkdir()
    (tmp_path / "other.zarr" / ".zattrs").write_text('{"multiscales": []}')
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    for name in ("foreign.tif", "other.zarr", "broken.tif", "missing.tif"):
        assert _reader.get_reader(str(tmp_path / name)) is None
    assert _reader.get_reader([]) is None


def test_writer_clears_partials_of_dead_saves(tmp_path):
    import subprocess
    import sys

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    stale = tmp_path / f".old.zarr.partial-{ended.pid}-0123abcd"
    (stale / "0").mkdir(parents=True)
    _writer.write_labels(str(tmp_path / "new.tif"), blobs(), {"name": "x"})
    assert not stale.exists() and (tmp_path / "new.tif").is_file()


def test_writer_rejects_unknown_extensions_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"\.zarr.*\.tif"):
        _writer.write_labels(str(tmp_path / "out.png"), blobs(), {})


def test_sample_data_is_real_and_small():
    [(nuclei, _, nkind)] = _sample_data.nuclei_fluorescence()
    [(he, hmeta, hkind)] = _sample_data.he_region()
    assert (nkind, hkind) == ("image", "image")
    assert nuclei.shape == (512, 512) and nuclei.dtype == np.uint16 and nuclei.std() > 50
    assert he.shape == (640, 640, 3) and he.dtype == np.uint8 and hmeta["rgb"]
    files = list(_sample_data.SAMPLE_DIR.glob("*.tif"))
    assert sum(f.stat().st_size for f in files) < 1.5e6
    for tif in files:  # each shipped image has its license notice beside it
        assert "license" in tif.with_suffix(".txt").read_text().lower()
