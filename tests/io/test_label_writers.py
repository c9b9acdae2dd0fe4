"""Label TIFF and OME-Zarr label writers, the incremental label store and read_labels."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr

from napari_sa2net.io import (
    create_label_store,
    open_image,
    read_labels,
    write_labels_tiff,
    write_ome_zarr_labels,
)

PROVENANCE = {
    "model": "sa2net-tiny",
    "model_sha256": "ab12",
    "tile": 256,
    "thresholds": {"interior": np.float32(0.5)},
    "normalization": (1.0, 99.8),
}


def _labels(shape=(300, 260), seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint32)
    for i in range(1, 40):
        y, x = rng.integers(0, shape[0] - 12), rng.integers(0, shape[1] - 12)
        labels[y : y + 10, x : x + 10] = i * 1000  # ids need not be contiguous
    return labels


def _expected_metadata():
    return {
        "model": "sa2net-tiny",
        "model_sha256": "ab12",
        "tile": 256,
        "thresholds": {"interior": 0.5},
        "normalization": [1.0, 99.8],
    }


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("lazy", [False, True])
def test_tiff_round_trip(tmp_path, lazy):
    labels = _labels()
    source = da.from_array(labels, chunks=100) if lazy else labels
    path = write_labels_tiff(tmp_path / "a.tif", source, PROVENANCE, pixel_size=(0.25, 0.25))
    back, meta = read_labels(path)
    assert back.dtype == np.uint32
    np.testing.assert_array_equal(back.compute(), labels)
    assert meta == {**_expected_metadata(), "pixel_size": [0.25, 0.25]}
    assert open_image(path).pixel_size == pytest.approx((0.25, 0.25))
    assert _listing(tmp_path) == ["a.tif"]


def test_tiff_is_compressed_and_tiled_when_large(tmp_path):
    import tifffile

    labels = np.zeros((1200, 1100), np.uint32)
    labels[100:200, 100:200] = 5
    write_labels_tiff(tmp_path / "big.tif", labels)
    with tifffile.TiffFile(tmp_path / "big.tif") as tif:
        page = tif.pages[0]
        assert page.is_tiled and page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    assert (tmp_path / "big.tif").stat().st_size < labels.nbytes // 50


def test_tiff_refuses_overwrite_and_bad_labels(tmp_path):
    write_labels_tiff(tmp_path / "a.tif", _labels())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_labels_tiff(tmp_path / "a.tif", _labels(seed=1))
    write_labels_tiff(tmp_path / "a.tif", _labels(seed=1), overwrite=True)
    np.testing.assert_array_equal(read_labels(tmp_path / "a.tif")[0], _labels(seed=1))
    with pytest.raises(ValueError, match="integers"):
        write_labels_tiff(tmp_path / "f.tif", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="a stack of them"):  # 3-D to 5-D are stacks
        write_labels_tiff(tmp_path / "f.tif", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match=">= 0"):
        write_labels_tiff(tmp_path / "f.tif", -np.ones((4, 4), np.int32))
    with pytest.raises(ValueError, match="not JSON"):
        write_labels_tiff(tmp_path / "f.tif", _labels(), {"model": object()})
    assert _listing(tmp_path) == ["a.tif"]


def test_ome_zarr_pyramid_from_dask(tmp_path):
    labels = np.zeros((2100, 1500), np.uint32)
    labels[::50, ::40] = np.arange(1, 42 * 38 + 1, dtype=np.uint32).reshape(42, 38)
    lazy = da.from_array(labels, chunks=(700, 600))
    path = write_ome_zarr_labels(
        tmp_path / "slide.zarr", lazy, PROVENANCE, chunks=(512, 512), pixel_size=(0.5, 0.5)
    )
    group = zarr.open_group(str(path), mode="r")
    assert [group[k].shape for k in ("0", "1", "2")] == [(2100, 1500), (1050, 750), (525, 375)]
    assert group["0"].chunks == (512, 512) and group["0"].dtype == np.uint32
    np.testing.assert_array_equal(group["1"][...], labels[::2, ::2])
    multiscale = group.attrs["multiscales"][0]
    assert multiscale["version"] == "0.4" and "image-label" in group.attrs
    scales = [d["coordinateTransformations"][0]["scale"] for d in multiscale["datasets"]]
    assert scales == [[0.5, 0.5], [1.0, 1.0], [2.0, 2.0]]
    back, meta = read_labels(path)
    np.testing.assert_array_equal(back.compute(), labels)
    assert meta == {**_expected_metadata(), "pixel_size": [0.5, 0.5]}
    assert _listing(tmp_path) == ["slide.zarr"]


def test_ome_zarr_is_read_by_ome_zarr_py(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    labels = _labels()
    path = write_ome_zarr_labels(tmp_path / "small.zarr", labels, {"model": "x"})
    (node,) = list(Reader(parse_url(str(path)))())
    assert any(isinstance(spec, Label) for spec in node.specs)
    np.testing.assert_array_equal(np.asarray(node.data[0]), labels)


def test_ome_zarr_failure_in_the_middle_leaves_nothing(tmp_path):
    labels = da.from_array(_labels(), chunks=100)

    def explode(block, block_info=None):
        if block_info[None]["chunk-location"] == (2, 1):
            raise RuntimeError("device lost")
        return block

    broken = labels.map_blocks(explode, dtype=labels.dtype)
    with pytest.raises(RuntimeError, match="device lost"):
        write_ome_zarr_labels(tmp_path / "x.zarr", broken, {}, chunks=(100, 100))
    assert _listing(tmp_path) == []


def test_ome_zarr_overwrite(tmp_path):
    write_ome_zarr_labels(tmp_path / "x.zarr", _labels(), {"run": 1})
    with pytest.raises(FileExistsError, match="overwrite"):
        write_ome_zarr_labels(tmp_path / "x.zarr", _labels(), {"run": 2})
    write_ome_zarr_labels(tmp_path / "x.zarr", _labels(seed=3), {"run": 2}, overwrite=True)
    back, meta = read_labels(tmp_path / "x.zarr")
    assert meta == {"run": 2}
    np.testing.assert_array_equal(back.compute(), _labels(seed=3))
    assert _listing(tmp_path) == ["x.zarr"]


def test_label_store_block_by_block(tmp_path):
    labels = _labels((1100, 300))
    with create_label_store(tmp_path / "inc.zarr", labels.shape, chunks=(256, 256)) as store:
        assert _listing(tmp_path) == [store.partial.name]
        for y in range(0, 1100, 256):
            for x in range(0, 300, 256):
                store.write_block(y, x, labels[y : y + 256, x : x + 256])
        path = store.finalize({"blocks": "yes"})
    back, meta = read_labels(path)
    np.testing.assert_array_equal(back.compute(), labels)
    assert meta == {"blocks": "yes"}
    assert read_labels(path, level=1)[0].shape == (550, 150)


def test_label_store_left_unfinished_is_removed(tmp_path):
    with pytest.raises(KeyboardInterrupt), create_label_store(tmp_path / "a.zarr", (64, 64)) as s:
        s.write_block(0, 0, np.ones((32, 32), np.uint32))
        raise KeyboardInterrupt
    store = create_label_store(tmp_path / "b.zarr", (64, 64))
    store.abort()
    assert _listing(tmp_path) == []
    with pytest.raises(ValueError, match="integer dtype"):
        create_label_store(tmp_path / "c.zarr", (64, 64), dtype=np.float32)


def test_disk_full_while_writing_leaves_nothing(tmp_path, monkeypatch):
    import errno

    import tifffile

    def fill_up(path, *args, **kwargs):
        with open(path, "wb") as out:
            out.write(b"II*\x00 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", fill_up)
    with pytest.raises(OSError, match="no space left on the device") as info:
        write_labels_tiff(tmp_path / "a.tif", _labels())
    assert info.value.errno == errno.ENOSPC

    def full_block(block):
        raise OSError(errno.ENOSPC, "No space left on device")

    lazy = da.from_array(_labels(), chunks=100).map_blocks(full_block, dtype=np.uint32)
    with pytest.raises(OSError, match="no space left on the device"):
        write_ome_zarr_labels(tmp_path / "b.zarr", lazy, chunks=(100, 100))
    assert _listing(tmp_path) == []
