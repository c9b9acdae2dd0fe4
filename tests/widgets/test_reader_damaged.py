"""The napari reader claims only outputs it can open; damage found later names the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sa2net import _reader
from napari_sa2net.io import write_labels_tiff, write_ome_zarr_labels


def labels(shape=(96, 80)) -> np.ndarray:
    out = np.zeros(shape, np.uint32)
    out[10:30, 12:40] = 3
    out[50:90, 5:75] = 7
    out[-20:, -20:] = 9  # far from the first chunk
    return out


def corrupt(path: Path, offset: int = 16, size: int = 24) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\xa5" * size)


def chunk_files(store: Path, level: str = "0") -> list[Path]:
    files = [p for p in (store / level).rglob("*") if p.is_file() and not p.name.startswith(".")]
    return sorted(files)


@pytest.fixture
def tif(tmp_path) -> Path:
    return write_labels_tiff(tmp_path / "out.tif", labels(), {"model": "tiny"})


@pytest.fixture
def store(tmp_path) -> Path:
    # 256² chunks, read in 512² dask chunks: the last one lies outside the first dask chunk.
    return write_ome_zarr_labels(
        tmp_path / "out.zarr", labels((600, 600)), {"m": 1}, chunks=(256, 256)
    )


def test_intact_outputs_are_claimed(tif, store):
    assert _reader.get_reader(str(tif)) is _reader.read_sa2net_labels
    assert _reader.get_reader([str(tif), str(store)]) is _reader.read_sa2net_labels


def test_a_truncated_tiff_is_not_claimed(tif):
    data = tif.read_bytes()
    tif.write_bytes(data[: len(data) // 2])
    assert _reader.get_reader(str(tif)) is None


@pytest.mark.parametrize("description", ['{"napari_sa2net": {"model": ', '{"napari_sa2net": 7}'])
def test_a_tiff_with_a_garbage_description_is_not_claimed(tmp_path, description):
    path = tmp_path / "garbage.tif"
    tifffile.imwrite(path, labels(), description=description, metadata=None)
    assert _reader.get_reader(str(path)) is None


def test_a_tiff_whose_first_strip_is_damaged_is_not_claimed(tif):
    with tifffile.TiffFile(tif) as handle:
        offset = handle.pages[0].dataoffsets[0]
    corrupt(tif, offset + 2)
    assert _reader.get_reader(str(tif)) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: os.remove(s / ".zattrs"),
        lambda s: (s / ".zattrs").write_text('{"napari_sa2net": {"m": 1}, "multisc'),
        lambda s: (s / ".zattrs").write_text('{"napari_sa2net": {}, "multiscales": 3}'),
        lambda s: os.remove(s / "0" / ".zarray"),
        lambda s: (s / "0" / ".zarray").write_text('{"zarr_format": 2, "shape": [128'),
        lambda s: corrupt(chunk_files(s)[0]),
    ],
    ids=["no-zattrs", "bad-zattrs", "bad-multiscales", "no-zarray", "bad-zarray", "chunk-0"],
)
def test_a_damaged_zarr_is_not_claimed(store, damage):
    damage(store)
    assert _reader.get_reader(str(store)) is None
    assert _reader.get_reader([str(store)]) is None


def test_a_chunk_damaged_further_in_fails_later_naming_the_store(store):
    corrupt(chunk_files(store)[-1])  # not the first chunk: the cheap check cannot see it
    reader = _reader.get_reader(str(store))
    assert reader is _reader.read_sa2net_labels
    [(data, meta, _)] = reader(str(store))
    assert len(chunk_files(store)) == 2 and not meta.get("multiscale")  # empty ones unwritten
    np.asarray(data[:512, :512])  # the intact first dask chunk
    with pytest.raises(ValueError, match=r"cannot read .*out\.zarr.*damaged") as info:
        np.asarray(data)
    assert "\n" not in str(info.value)


def test_a_zarr_with_pickled_chunks_is_refused_and_runs_nothing(tmp_path, write_payload):
    """zarr 2 unpickles object chunks when read; the reader must never get there."""
    marker = tmp_path / "ran"
    store = tmp_path / "evil.zarr"
    store.mkdir()
    (store / ".zattrs").write_text(json.dumps({"napari_sa2net": {}}))
    meta = {"zarr_format": 2, "shape": [4, 4], "chunks": [4, 4], "dtype": "|O", "order": "C",
            "compressor": None, "fill_value": None, "filters": [{"id": "pickle"}]}  # fmt: skip
    (store / ".zarray").write_text(json.dumps(meta))
    write_payload(store / "0.0", marker, legacy=True)
    assert _reader.get_reader(str(store)) is None
    from napari_sa2net.io import open_image

    with pytest.raises(ValueError, match="nothing ran"):
        open_image(store)
    assert not marker.exists()
