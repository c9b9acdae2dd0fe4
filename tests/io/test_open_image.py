"""open_image: arrays, TIFF family, zarr and OME-Zarr to lazy YXC dask arrays; bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from napari_sa2net.io import open_image
from napari_sa2net.io._zarr_compat import ZARR_V3, create_array, create_v2_array, create_v2_group

HE_SLIDE = Path("/work/shared/data/he/cmu_small_region.svs")


def _ramp(shape: tuple[int, ...], dtype: str = "uint16") -> np.ndarray:
    return (np.arange(np.prod(shape)) % 60000).reshape(shape).astype(dtype)


@pytest.mark.parametrize(
    ("shape", "axes", "channels"),
    [((20, 30), "YX", 1), ((20, 30, 3), "YXC", 3), ((2, 20, 30), "CYX", 2)],
)
def test_numpy_axes_are_guessed(shape, axes, channels):
    array = _ramp(shape)
    image = open_image(array)
    assert isinstance(image.data, da.Array)
    assert image.axes == axes and image.shape == (20, 30, channels)
    expected = np.moveaxis(array, 0, -1) if axes == "CYX" else array.reshape(20, 30, -1)
    np.testing.assert_array_equal(image.data.compute(), expected)
    assert image.name == "image" and image.path is None and image.pixel_size is None


@pytest.mark.parametrize("shape", [(3, 20, 4), (10, 20, 30), (2, 3, 20, 30)])
def test_ambiguous_array_asks_for_axes(shape):
    with pytest.raises(ValueError, match="axes="):
        open_image(np.zeros(shape, np.uint8))


def test_explicit_axes_and_plane():
    stack = _ramp((5, 20, 30))
    with pytest.warns(UserWarning, match="Z=0"):
        image = open_image(stack, axes="ZYX")
    np.testing.assert_array_equal(image.data[..., 0].compute(), stack[0])
    image = open_image(stack, axes="ZYX", plane=3)
    np.testing.assert_array_equal(image.data[..., 0].compute(), stack[3])
    with pytest.raises(ValueError, match=r"plane Z=7 is out of range: axis Z has 0..4"):
        open_image(stack, axes="ZYX", plane=7)


def test_dask_input_stays_lazy_and_channels_are_picked():
    array = da.from_array(_ramp((40, 50, 3)), chunks=(16, 16, 3))
    image = open_image(array, channel=[2, 0])
    assert image.shape == (40, 50, 2)
    np.testing.assert_array_equal(image.data.compute(), array.compute()[:, :, [2, 0]])
    assert open_image(array, channel=1).shape == (40, 50, 1)


@pytest.mark.parametrize("channel", [3, -1, [0, 5], []])
def test_channel_out_of_range(channel):
    with pytest.raises(ValueError, match=r"valid indices are 0..2"):
        open_image(np.zeros((20, 30, 3), np.uint8), channel=channel)


def test_rgba_drops_alpha_unless_asked(tmp_path):
    rgba = _ramp((32, 40, 4), "uint8")
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb")
    image = open_image(tmp_path / "rgba.tif")
    assert image.rgb and image.shape == (32, 40, 3)
    np.testing.assert_array_equal(image.data.compute(), rgba[:, :, :3])
    assert open_image(tmp_path / "rgba.tif", channel=3).shape == (32, 40, 1)
    assert open_image(rgba).shape == (32, 40, 3)  # uint8 RGBA array too


@pytest.mark.parametrize("shape", [(1, 1), (1, 50), (1, 1, 3)])
def test_tiny_images_are_refused(shape):
    with pytest.raises(ValueError, match=r"at least 2×2"):
        open_image(np.zeros(shape, np.uint16), axes="YXC"[: len(shape)])


def test_he_slide_opens_lazily_as_rgb():
    if not HE_SLIDE.exists():
        pytest.skip("shared H&E slide not available")
    image = open_image(HE_SLIDE)
    assert image.axes == "YXS" and image.shape == (2967, 2220, 3) and image.dtype == np.uint8
    assert image.rgb and image.name == "cmu_small_region"
    assert image.pixel_size == pytest.approx((0.499, 0.499))
    assert image.data.chunksize == (720, 720, 3)  # 3×3 of the file's 240² tiles
    with tifffile.TiffFile(HE_SLIDE) as tif:
        expected = tif.series[0].asarray()[1000:1100, 500:640]
    np.testing.assert_array_equal(image.data[1000:1100, 500:640].compute(), expected)
    pickle.loads(pickle.dumps(image.data))  # the graph ships to distributed workers


def test_tiled_tiff_chunks_mirror_tiles_and_reads_are_local(tmp_path, monkeypatch):
    from napari_sa2net.io.tiff_arrays import TiledPageArray

    big = np.zeros((4096, 4096), np.uint16)
    big[1024:1536, 2048:2560] = 7
    tifffile.imwrite(tmp_path / "big.tif", big, tile=(256, 256), compression="zlib")
    image = open_image(tmp_path / "big.tif")
    assert image.data.chunksize == (512, 512, 1)
    assert image.data.numblocks == (8, 8, 1)

    read: list[int] = []
    original = TiledPageArray._tile

    def counting_tile(self, page, index):
        read.append(index)
        return original(self, page, index)

    monkeypatch.setattr(TiledPageArray, "_tile", counting_tile)
    block = image.data.blocks[2, 4].compute()
    assert block.shape == (512, 512, 1) and (block == 7).all()
    # only the 2×2 file tiles under that chunk (16 tiles per row of the file)
    assert sorted(read) == [4 * 16 + 8, 4 * 16 + 9, 5 * 16 + 8, 5 * 16 + 9]


@pytest.mark.parametrize("compression", [None, "zlib", "jpeg"])
def test_tile_reader_matches_tifffile_on_odd_windows(tmp_path, compression):
    rgb = _ramp((300, 410, 3), "uint8")
    path = tmp_path / "tiles.tif"
    tifffile.imwrite(path, rgb, tile=(64, 128), photometric="rgb", compression=compression)
    expected = tifffile.imread(path)  # jpeg is lossy: compare with what tifffile decodes
    data = open_image(path).data
    for window in [np.s_[0:300, 0:410], np.s_[63:65, 127:300], np.s_[299:, ::7], np.s_[5, 400:]]:
        np.testing.assert_array_equal(data[window].compute(), expected[window])
    rechunked = data.rechunk((97, 101, 3))
    np.testing.assert_array_equal(rechunked.compute(), expected)
    gray_path = tmp_path / "gray.tif"
    gray = np.zeros((200, 200), np.uint16)
    gray[150:, 150:] = 9
    tifffile.imwrite(gray_path, gray, tile=(64, 64), compression="zlib")
    np.testing.assert_array_equal(open_image(gray_path).data[..., 0].compute(), gray)


def test_ome_tiff_axes_channels_and_pixel_size(tmp_path):
    data = _ramp((3, 64, 80))
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(
        path, data, metadata={"axes": "CYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65}
    )
    image = open_image(path, channel=1)
    assert image.axes == "CYX" and image.name == "cells" and image.shape == (64, 80, 1)
    assert image.pixel_size == pytest.approx((0.65, 0.65))
    np.testing.assert_array_equal(image.data[..., 0].compute(), data[1])


def test_pyramidal_tiff_levels(tmp_path):
    base = _ramp((512, 768))
    path = tmp_path / "pyramid.ome.tif"
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(
            base,
            subifds=1,
            tile=(128, 128),
            metadata={"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5},
        )
        tif.write(base[::2, ::2], subfiletype=1, tile=(128, 128))
    assert open_image(path).shape == (512, 768, 1)
    low = open_image(path, level=1)
    assert low.shape == (256, 384, 1) and low.pixel_size == pytest.approx((1.0, 1.0))
    np.testing.assert_array_equal(low.data[..., 0].compute(), base[::2, ::2])
    with pytest.raises(ValueError, match="level 2 is out of range"):
        open_image(path, level=2)


def test_corrupt_and_truncated_tiff(tmp_path):
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"this is not a tiff at all" * 10)
    with pytest.raises(ValueError, match=r"cannot read .*garbage.tif.*complete"):
        open_image(garbage)
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, _ramp((256, 256)), tile=(64, 64))
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cannot read .*cut.tif.*is the file complete"):
        open_image(cut)
    with pytest.raises(FileNotFoundError, match="no image at"):
        open_image(tmp_path / "missing.tif")


@pytest.mark.parametrize(
    "fmt", [2, pytest.param(3, marks=pytest.mark.skipif(not ZARR_V3, reason="needs zarr 3"))]
)
def test_plain_zarr_v2_and_v3(tmp_path, fmt):
    data = _ramp((70, 90))
    path = tmp_path / f"plain{fmt}.zarr"
    array = create_array(
        path, shape=data.shape, chunks=(32, 32), dtype=data.dtype, zarr_format=fmt
    )
    array[...] = data
    image = open_image(path)
    assert image.axes == "YX" and image.shape == (70, 90, 1) and image.name == f"plain{fmt}"
    np.testing.assert_array_equal(image.data[..., 0].compute(), data)


def test_ome_zarr_multiscale_with_channels_and_z(tmp_path):
    data = _ramp((2, 3, 64, 48))  # C Z Y X
    path = tmp_path / "img.ome.zarr"
    group = create_v2_group(path)
    low = data[:, :, ::2, ::2]
    for name, level in (("0", data), ("1", low)):
        array = create_v2_array(group, name, shape=level.shape, chunks=(1, 1, 32, 32), dtype="u2")
        array[...] = level
    axes = [{"name": "c", "type": "channel"}, {"name": "z", "type": "space"}] + [
        {"name": a, "type": "space", "unit": "micrometer"} for a in "yx"
    ]
    scales = [[1, 1, 0.3 * 2**i, 0.3 * 2**i] for i in range(2)]
    datasets = [
        {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": s}]}
        for i, s in enumerate(scales)
    ]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]
    image = open_image(path, plane={"Z": 2}, channel=1)
    assert image.axes == "CZYX" and image.name == "img" and image.shape == (64, 48, 1)
    assert image.pixel_size == pytest.approx((0.3, 0.3))
    np.testing.assert_array_equal(image.data[..., 0].compute(), data[1, 2])
    image = open_image(path, level=1, plane=1)
    assert image.shape == (32, 24, 2) and image.pixel_size == pytest.approx((0.6, 0.6))
    np.testing.assert_array_equal(image.data.compute(), np.moveaxis(low[:, 1], 0, -1))


def test_zarr_group_without_multiscales_names_arrays(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    create = group.create_array if ZARR_V3 else group.create_dataset  # zarr 2: Python 3.10
    create("raw", shape=(10, 10), dtype="u1")
    with pytest.raises(ValueError, match=r"without OME-Zarr multiscales.*raw"):
        open_image(tmp_path / "g.zarr")


def test_unsupported_source_type():
    with pytest.raises(ValueError, match="pass a file path, a numpy array or a dask array"):
        open_image(42)


def test_io_package_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, napari_sa2net.io; print(sorted({'torch','dask','zarr'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("options", [{"imagej": True}, {"byteorder": ">"}, {}])
def test_uncompressed_single_strip_tiff_is_memory_mapped(tmp_path, options):
    data = _ramp((1500, 1300))
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, data, **options)  # one strip: the zarr store would make one chunk
    image = open_image(path)
    assert image.data.chunksize == (512, 512, 1) and image.dtype == np.dtype("uint16")
    np.testing.assert_array_equal(
        image.data[700:900, 1000:1300, 0].compute(), data[700:900, 1000:]
    )
    restored = pickle.loads(pickle.dumps(image.data))
    np.testing.assert_array_equal(restored.blocks[1, 2].compute()[..., 0], data[512:1024, 1024:])


def test_an_open_image_can_be_reopened_with_other_channels():
    image = open_image(_ramp((20, 30, 3), "uint8"), name="rgb")
    assert open_image(image) is image
    green = open_image(image, channel=1)
    assert green.shape == (20, 30, 1) and green.name == "rgb" and not green.rgb
    with pytest.raises(ValueError, match="pass its path"):
        open_image(image, level=1)


def test_ome_zarr_0_5_written_by_ome_zarr_py(tmp_path):
    from ome_zarr.writer import write_image

    data = _ramp((2, 300, 200))
    group = zarr.open_group(str(tmp_path / "v5.zarr"), mode="w")  # NGFF 0.5 (0.4 on zarr 2)
    write_image(data, group, axes="cyx")
    image = open_image(tmp_path / "v5.zarr", channel=[1, 0])
    assert image.axes == "CYX" and image.shape == (300, 200, 2)
    np.testing.assert_array_equal(image.data.compute(), np.moveaxis(data[[1, 0]], 0, -1))
    assert open_image(tmp_path / "v5.zarr", level=1).shape == (150, 100, 2)


def test_truncated_he_slide(tmp_path):
    if not HE_SLIDE.exists():
        pytest.skip("shared H&E slide not available")
    cut = tmp_path / "cut.svs"
    cut.write_bytes(HE_SLIDE.read_bytes()[:900_000])
    with pytest.raises(ValueError, match=r"cannot read .*cut.svs: .*is the file complete"):
        open_image(cut)


def test_multi_page_compressed_stack_goes_through_the_zarr_store(tmp_path):
    from napari_sa2net.io.tiff_arrays import TiffArray

    stack = _ramp((4, 3, 96, 130))  # T C Y X, tiled and compressed: neither memmap nor one page
    path = tmp_path / "tc.ome.tif"
    tifffile.imwrite(path, stack, tile=(32, 64), compression="zlib", metadata={"axes": "TCYX"})
    with pytest.warns(UserWarning, match="T=0"):
        image = open_image(path, channel=2)
    assert image.axes == "TCYX" and image.shape == (96, 130, 1)
    np.testing.assert_array_equal(image.data[..., 0].compute(), stack[0, 2])
    late = open_image(path, plane={"T": 3})
    graph = late.data.__dask_graph__()
    assert any(isinstance(v, TiffArray) for v in graph.values())
    restored = pickle.loads(pickle.dumps(late.data))
    np.testing.assert_array_equal(restored.compute(), np.moveaxis(stack[3], 0, -1))
