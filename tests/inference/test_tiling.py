"""Tile plans: coverage, grid alignment, blending weights, validation (pure index maths)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_sa2net.inference.tiling import ALIGN, TilePlan


def _coverage(plan: TilePlan) -> np.ndarray:
    count = np.zeros(plan.shape, int)
    for tile in plan:
        count[tile.slices] += 1
    return count


@pytest.mark.parametrize(
    ("shape", "tile", "overlap"),
    [
        ((1, 1), 64, 16),
        ((37, 1000), 256, 64),
        ((513, 700), 256, 0),
        ((1000, 1000), 256, 64),
        ((527, 271), 128, 96),
        ((256, 256), 256, 64),
        ((2048, 2048), 512, 128),
    ],
)
def test_tiles_cover_image_on_grid(shape, tile, overlap):
    plan = TilePlan(shape, tile, overlap)
    cover = _coverage(plan)
    assert cover.min() >= 1
    for t in plan:
        assert t.y0 % ALIGN == 0 and t.x0 % ALIGN == 0
        assert 0 <= t.y0 < t.y1 <= shape[0] and 0 <= t.x0 < t.x1 <= shape[1]
        # a tile is the full size, the image size, or at most ALIGN - 1 px shorter (last one)
        for extent, length in zip(t.shape, shape):
            assert extent == min(tile, length) or tile - ALIGN < extent < tile
    assert len(plan) == len(plan.tiles()) == plan.grid[0] * plan.grid[1]


def test_small_image_is_one_tile_of_its_own_size():
    plan = TilePlan((100, 37), 256, 64)
    (only,) = plan.tiles()
    assert only.shape == (100, 37)
    assert np.all(plan.window(only) == 1)


def test_neighbours_share_at_least_the_overlap():
    plan = TilePlan((1000, 1000), 256, 64)
    ys = plan.starts_y
    assert [b - a for a, b in itertools.pairwise(ys)] == [192, 192, 192, 176]


@pytest.mark.parametrize("shape", [(1000, 1000), (600, 333)])
def test_weights_positive_and_tapered_only_inside(shape):
    plan = TilePlan(shape, 256, 64)
    for tile in plan:
        window = plan.window(tile)
        assert window.shape == tile.shape and window.dtype == np.float32
        assert window.min() > 0 and window.max() == 1
        top, bottom, left, right = tile.taper
        assert (window[0].max() < 1e-3) == top
        assert (window[-1].max() < 1e-3) == bottom
        assert (window[:, 0].max() < 1e-3) == left
        assert (window[:, -1].max() < 1e-3) == right


def test_window_is_partition_of_unity_in_regular_overlap():
    plan = TilePlan((448, 448), 256, 64)  # two tiles per axis, exact overlap of 64
    a, b = plan.tiles()[:2]
    wa, wb = plan.window(a)[128, :], plan.window(b)[128, :]
    overlap = slice(b.x0, a.x1)
    total = wa[overlap] + wb[: a.x1 - b.x0]
    np.testing.assert_allclose(total, 1.0, atol=2e-6)


@pytest.mark.parametrize(
    ("tile", "overlap", "fix"),
    [
        (250, 32, "tile=256"),
        (256, 20, "overlap=16"),
        (128, 128, "smaller than tile"),
        (0, 0, "tile="),
        (256, -16, "overlap="),
    ],
)
def test_bad_sizes_name_the_fix(tile, overlap, fix):
    with pytest.raises(ValueError, match=fix):
        TilePlan((512, 512), tile, overlap)


def test_empty_image_rejected():
    with pytest.raises(ValueError, match="1×1"):
        TilePlan((0, 10), 256, 64)
