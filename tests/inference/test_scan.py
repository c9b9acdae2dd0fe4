"""The one pass before prediction: statistics, and background that is skipped only when empty."""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pytest

from napari_sa2net.inference.merger import Chunking, background_probabilities
from napari_sa2net.inference.pipeline import predict_chunks
from napari_sa2net.inference.predictor import Predictor
from napari_sa2net.inference.scan import assemble, cell_size, read_parts, scan
from napari_sa2net.inference.tiling import TilePlan
from napari_sa2net.normalization import Normalization

STATS = (np.zeros(1), np.ones(1))
NORM = Normalization()


def _slide(shape=(300, 410)):
    """Flat 0.1 everywhere except a textured patch and one bright pixel."""
    image = np.full((*shape, 1), 0.1, np.float32)
    rng = np.random.default_rng(0)
    image[40:90, 250:330, 0] += rng.random((50, 80), np.float32)
    image[222, 37, 0] = 0.9  # a single bright spot must keep its tile
    return image


def _camera(shape, seed=0, offset=1000.0, sigma=40.0, hot=2e-4):
    """Empty glass: Gaussian read noise around an offset, plus hot pixels (20 σ)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(offset, sigma, shape)
    hot_pixels = rng.random(shape) < hot
    image[hot_pixels] += 20 * sigma
    return image


def _nucleus(image, cy, cx, radius, contrast):
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    image[np.hypot(yy - cy, xx - cx) < radius] += contrast


def _tiles_at(plan, y, x):
    return {t.index for t in plan if t.y0 <= y < t.y1 and t.x0 <= x < t.x1}


def test_flat_tiles_are_conservative_and_close_to_exact():
    image = _slide()
    plan = TilePlan(image.shape[:2], 64, 16)
    skipped = scan(image, plan, NORM, skip_background=True).skip
    exact = {t.index for t in plan if np.ptp(image[t.slices]) == 0}
    assert skipped <= exact  # never skips a tile with content
    assert len(skipped) >= len(exact) - 8  # cells of 16 px lose only tiles next to content
    assert not _tiles_at(plan, 222, 37) & skipped
    assert scan(image, plan, NORM, skip_background=False).skip == frozenset()


def test_camera_noise_is_skipped_and_a_dim_small_nucleus_is_not():
    image = _camera((768, 896))
    _nucleus(image, 400, 300, 7, 1.5 * 40)  # 14 px across, contrast 1.5 σ
    _nucleus(image, 150, 700, 15, 10 * 40)  # an ordinary bright one
    plan = TilePlan(image.shape, 128, 32)
    found = scan(image[..., None], plan, NORM, skip_background=True)
    keep = _tiles_at(plan, 400, 300) | _tiles_at(plan, 150, 700)
    assert not keep & found.skip
    assert len(found.skip) >= len(plan) - len(keep) - 2  # hot pixels do not keep tiles
    assert found.noise[0] == pytest.approx(40, rel=0.1)


def test_an_uneven_background_is_predicted_not_skipped():
    image = _camera((512, 512), hot=0)
    image += np.linspace(0, 400, 512)[None, :]  # shading of 10 σ across the field
    plan = TilePlan(image.shape, 128, 32)
    found = scan(image[..., None], plan, NORM, skip_background=True)
    right = {t.index for t in plan if t.x0 >= 384}
    assert not right & found.skip  # far from the background level: kept (conservative)


def test_statistics_come_from_the_tissue_not_the_empty_glass():
    rng = np.random.default_rng(3)
    tissue = _camera((512, 512), seed=1)
    for _ in range(60):
        _nucleus(tissue, *rng.integers(20, 492, 2), rng.integers(8, 14), rng.uniform(400, 3000))
    slide = _camera((2048, 2048), seed=2)
    slide[768:1280, 768:1280] = tissue
    plan = TilePlan(slide.shape, 256, 64)
    sparse = scan(slide[..., None], plan, NORM, skip_background=True)
    alone = NORM.statistics(tissue[..., None])
    whole = NORM.statistics(slide[..., None])
    assert len(sparse.skip) > 0.8 * len(plan)
    span = alone[1][0] - alone[0][0]
    assert abs(sparse.stats[1][0] - alone[1][0]) < 0.1 * span  # not pulled down by the glass
    assert abs(whole[1][0] - alone[1][0]) > 0.3 * span  # as the whole slide's would be
    off = scan(slide[..., None], plan, NORM, skip_background=False)
    np.testing.assert_array_equal(off.stats[1], whole[1])  # same sample grid as statistics()


@pytest.mark.parametrize("chunks", [(37, 53), (128, 410), (300, 410)])
def test_dask_scan_equals_numpy_scan(chunks):
    image = _slide()
    image += np.random.default_rng(5).normal(0, 0.01, image.shape).astype(np.float32)
    cell = cell_size(image.shape[:2])
    expected = assemble(read_parts(image, cell, True, "sync"), image.shape[:2], cell)
    lazy = da.from_array(image, chunks=(*chunks, 1))
    got = assemble(read_parts(lazy, cell, True, "threads"), image.shape[:2], cell)
    for a, b in zip(got.__dict__.values(), expected.__dict__.values()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    plan = TilePlan(image.shape[:2], 64, 16)
    a, b = scan(image, plan, NORM, True), scan(lazy, plan, NORM, True)
    assert a.skip == b.skip and np.array_equal(a.stats[1], b.stats[1])
    assert expected.mean.shape == (-(-300 // cell), -(-410 // cell), 1)
    # The spot raises its cell's mean; a lone pixel moves no bin of 2×2 medians (hot pixels).
    assert expected.mean[222 // cell, 37 // cell, 0] > 0.1 + 0.7 / cell**2


def test_cell_grows_for_huge_images():
    assert cell_size((1000, 1000)) == 16
    assert cell_size((200_000, 150_000)) == 128


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
    found = scan(lazy, plan, NORM, skip_background=True)
    assert len(reads) == 16 and len(set(reads)) == 16  # the pass reads every chunk once
    reads.clear()
    probs = np.full((1, 512, 512), np.nan, np.float32)

    def sink(bounds, chunk):
        y0, y1, x0, x1 = bounds
        probs[:, y0:y1, x0:x1] = chunk

    predictor = Predictor(identity(1), batch_size=4, activation="none", stats=STATS)
    chunking = Chunking.regular((512, 512), 128)
    predict_chunks(lazy, plan, chunking, predictor, found.skip, sink)
    assert (3, 0) not in reads and (3, 3) not in reads  # empty glass
    assert (0, 2) in reads and (1, 0) in reads  # the patch, the spot
    assert predictor.model.calls < len(plan)
    np.testing.assert_array_equal(probs[0, 400:, 400:], background_probabilities(1)[0])
    np.testing.assert_allclose(probs[0, 40:90, 250:330], image[40:90, 250:330, 0])
