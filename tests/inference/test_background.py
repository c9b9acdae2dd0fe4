"""The low-resolution background check: conservative, chunking-independent, and saves reads."""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pytest

from napari_sa2net.inference.background import cell_extrema, cell_size, flat_tiles
from napari_sa2net.inference.pipeline import store_probabilities
from napari_sa2net.inference.predictor import Predictor
from napari_sa2net.inference.stitching import Chunking, background_probabilities
from napari_sa2net.inference.tiling import TilePlan

STATS = (np.zeros(1), np.ones(1))


def _slide(shape=(300, 410)):
    """Flat 0.1 everywhere except a textured patch and one bright pixel."""
    image = np.full((*shape, 1), 0.1, np.float32)
    rng = np.random.default_rng(0)
    image[40:90, 250:330, 0] += rng.random((50, 80), np.float32)
    image[222, 37, 0] = 0.9  # a single bright spot must keep its tile
    return image


def _exact_flat(image, plan, flat_range):
    return {t.index for t in plan if np.ptp(image[t.slices]) < flat_range}


def test_flat_tiles_are_conservative_and_close_to_exact():
    image = _slide()
    plan = TilePlan(image.shape[:2], 64, 16)
    flat = flat_tiles(image, plan, STATS, 0.02)
    exact = _exact_flat(image, plan, 0.02)
    assert flat <= exact  # never skips a tile with content
    assert len(flat) >= len(exact) - 8  # cells of 16 px lose only tiles next to content
    spot = [t.index for t in plan if t.y0 <= 222 < t.y1 and t.x0 <= 37 < t.x1]
    assert spot and not set(spot) & flat
    assert flat_tiles(image, plan, STATS, None) == frozenset()


@pytest.mark.parametrize("chunks", [(37, 53), (128, 410), (300, 410)])
def test_dask_map_equals_numpy_map(chunks):
    image = _slide()
    cell = cell_size(image.shape[:2])
    expected = cell_extrema(image, STATS, cell, scheduler="sync")
    got = cell_extrema(da.from_array(image, chunks=(*chunks, 1)), STATS, cell, "threads")
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    low, high = expected
    assert low.shape == (-(-300 // cell), -(-410 // cell))
    np.testing.assert_allclose(low[0, 0], 0.1)
    assert high[222 // cell, 37 // cell] == pytest.approx(0.9)


def test_cell_grows_for_huge_images():
    assert cell_size((1000, 1000)) == 16
    assert cell_size((200_000, 150_000)) == 64


def test_background_chunks_are_never_read_for_prediction(identity):
    image = _slide((512, 512))
    reads: list[tuple[int, int]] = []
    lock = threading.Lock()

    def record(block, block_info=None):
        with lock:
            reads.append(tuple(block_info[0]["chunk-location"][:2]))
        return block

    lazy = da.from_array(image, chunks=(128, 128, 1)).map_blocks(record, dtype=np.float32)
    plan = TilePlan((512, 512), 64, 16)
    probs = np.full((1, 512, 512), np.nan, np.float32)
    predictor = Predictor(identity(1), batch_size=4, activation="none")
    chunking = Chunking.regular((512, 512), 128)
    store_probabilities(lazy, plan, chunking, predictor, STATS, 1, 0.02, probs, scheduler="sync")
    first_pass = 16  # the map reads every chunk once
    assert len(reads[:first_pass]) == 16 and len(set(reads[:first_pass])) == 16
    prediction_reads = set(reads[first_pass:])
    assert (3, 0) not in prediction_reads and (3, 3) not in prediction_reads  # empty glass
    assert (0, 2) in prediction_reads and (1, 0) in prediction_reads  # the patch, the spot
    assert predictor.model.calls < len(plan)
    np.testing.assert_array_equal(probs[0, 400:, 400:], background_probabilities(1)[0])
    np.testing.assert_allclose(probs[0, 40:90, 250:330], image[40:90, 250:330, 0])
