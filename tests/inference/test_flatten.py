"""``flatten``: the background field of uneven illumination, and its subtraction as the image
is read (the same whatever the chunks)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_sa2net.inference.flatten import (
    UNEVEN_THRESHOLD,
    background_field,
    field_at,
    flatten_data,
    unevenness,
)
from napari_sa2net.inference.scan import scan
from napari_sa2net.inference.settings import SegmentSettings, SettingError
from napari_sa2net.inference.tiling import TilePlan
from napari_sa2net.normalization import Normalization


def _nuclei_on_a_ramp(size: int = 256, tilt: float = 600.0) -> tuple[np.ndarray, np.ndarray]:
    """Bright 20-px discs on a dark field, the background rising by ``tilt`` left to right."""
    yy, xx = np.mgrid[:size, :size]
    discs = np.zeros((size, size), np.float32)
    for cy in range(24, size, 48):
        for cx in range(24, size, 48):
            discs[(yy - cy) ** 2 + (xx - cx) ** 2 < 100] = 1000.0
    ramp = (tilt * xx / (size - 1)).astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 5, (size, size)).astype(np.float32)
    return (100 + ramp + discs + noise)[..., None], ramp


def test_the_field_follows_the_ramp_under_the_nuclei():
    image, ramp = _nuclei_on_a_ramp()
    cell = 16
    low = image.reshape(16, cell, 16, cell, 1).min((1, 3))  # the cells' lowest pixels
    field = background_field(low, cell, reach=64)
    # at the cell centres, away from the ends the opening clamps
    centres = ramp[cell // 2 :: cell, cell // 2 :: cell]
    err = field[..., 0] - 100 - centres  # a cell's lowest pixel lies below its centre's ramp
    assert np.abs(err - np.median(err)).max() < 25  # of a 600 rise, nuclei 1000 above it
    assert abs(np.median(err)) < 40
    assert unevenness(field, (np.array([100.0]), np.array([1700.0]))) > UNEVEN_THRESHOLD


def test_the_field_is_interpolated_between_cell_centres():
    rows, cols = np.mgrid[:3, :4]
    field = (40.0 * rows + 10.0 * cols).astype(np.float32)[..., None]
    at = field_at(field, 16, (0, 48), (0, 64))[..., 0]
    y, x = np.mgrid[8:40, 8:56]  # between the first and last cell centres: linear
    want = 40 * ((y + 0.5) / 16 - 0.5) + 10 * ((x + 0.5) / 16 - 0.5)
    np.testing.assert_allclose(at[8:40, 8:56], want, atol=1e-4)
    assert at[0, 0] == pytest.approx(0.0) and at[47, 63] == pytest.approx(110.0)  # clamped
    part = field_at(field, 16, (10, 30), (20, 50))
    np.testing.assert_array_equal(part, field_at(field, 16, (0, 48), (0, 64))[10:30, 20:50])


def test_flattening_does_not_depend_on_the_chunks():
    image, _ = _nuclei_on_a_ramp(200)
    field = np.random.default_rng(1).random((13, 13, 1)).astype(np.float32) * 300
    whole = flatten_data(image, field, 16)
    for chunks in ((64, 64, 1), (37, 101, 1), (200, 200, 1)):
        lazy = flatten_data(da.from_array(image, chunks=chunks), field, 16)
        np.testing.assert_allclose(np.asarray(lazy), whole, rtol=0, atol=1e-3)


def test_scan_flattens_an_unevenly_lit_image_and_leaves_an_even_one():
    norm = Normalization()
    tilted, _ = _nuclei_on_a_ramp()
    even, _ = _nuclei_on_a_ramp(tilt=0.0)
    plan = TilePlan((256, 256), 128, 32)
    found = scan(tilted, plan, norm, True, flatten="auto", reach=64)
    assert found.field is not None and found.unevenness > UNEVEN_THRESHOLD
    plain = scan(tilted, plan, norm, True)
    assert plain.field is None and plain.unevenness is None
    # the flattened statistics see the nuclei above a level background: a narrower span
    span = float(found.stats[1][0] - found.stats[0][0])
    assert span < float(plain.stats[1][0] - plain.stats[0][0])
    assert span == pytest.approx(1000, rel=0.15)
    calm = scan(even, plan, norm, True, flatten="auto", reach=64)
    assert calm.field is None and calm.unevenness < 0.05
    assert scan(even, plan, norm, False, flatten=True, reach=64).field is not None


@pytest.mark.parametrize("bad", [1, 0, "yes", None])
def test_a_bad_flatten_is_refused_naming_the_setting(bad):
    with pytest.raises(SettingError, match=r"flatten=.* must be True, False or 'auto'"):
        SegmentSettings(flatten=bad)
    assert SegmentSettings().flatten == "auto"


def test_the_cli_reads_flatten():
    import argparse

    from napari_sa2net.cli._settings_args import flatten_value

    assert flatten_value("AUTO") == "auto" and flatten_value("on") is True
    assert flatten_value("off") is False
    with pytest.raises(argparse.ArgumentTypeError, match="give auto, on or off"):
        flatten_value("maybe")


def test_the_segment_flags_reach_the_settings():
    import argparse

    from napari_sa2net.cli._settings_args import add_settings_arguments, settings_from_args

    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    assert settings_from_args(parser.parse_args([])).flatten == "auto"
    chosen = settings_from_args(parser.parse_args(["--flatten", "off", "--denoise", "2"]))
    assert chosen.flatten is False and chosen.denoise == 2.0
    assert settings_from_args(parser.parse_args(["--denoise", "off"])).denoise is None
