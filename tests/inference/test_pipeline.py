"""The dask path equals the numpy path: probabilities exactly, instances object for object."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_sa2net.inference.pipeline import instances_chunked, store_probabilities
from napari_sa2net.inference.postprocess import probabilities_to_instances
from napari_sa2net.inference.predictor import Predictor
from napari_sa2net.inference.stitching import Chunking, predict_in_memory
from napari_sa2net.inference.tiling import TilePlan

STATS = (np.zeros(3), np.ones(3))


@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "chunk", "image_chunks"),
    [
        ((203, 157), 64, 32, 64, (50, 31)),
        ((300, 97), 48, 16, 96, (300, 97)),
        ((40, 33), 64, 16, 64, (7, 9)),
    ],
)
def test_dask_identity_equals_input_and_numpy(identity, shape, tile, overlap, chunk, image_chunks):
    image = np.random.default_rng(0).random((*shape, 3), dtype=np.float32)
    predictor = Predictor(identity(3), batch_size=2, activation="none")
    plan = TilePlan(shape, tile, overlap)
    lazy = da.from_array(image, chunks=(*image_chunks, 3))
    probs = np.full((3, *shape), np.nan, np.float32)
    chunking = Chunking.regular(shape, chunk)
    stored = []

    def on_chunk(bounds):  # each chunk is reported once, after its pixels are in the target
        y0, y1, x0, x1 = bounds
        assert not np.isnan(probs[:, y0:y1, x0:x1]).any()
        stored.append(bounds)

    store_probabilities(
        lazy, plan, chunking, predictor, STATS, 3, None, probs, in_flight=3, on_chunk=on_chunk
    )
    np.testing.assert_array_equal(probs, np.moveaxis(image, -1, 0))
    rows, cols = chunking.grid
    assert sorted(stored) == sorted(
        chunking.bounds(i, j) for i in range(rows) for j in range(cols)
    )
    in_memory = predict_in_memory(image, plan, predictor, STATS, 3, None)
    np.testing.assert_array_equal(probs, in_memory)


def _blobs(shape, seed=0):
    """3-class probabilities of touching blobs: background, interior, boundary.

    Smooth (no plateaus), like a network's output: on exact ties a watershed's result depends
    on the order pixels enter its queue, which differs between a block and the whole image.
    """
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.random(shape), 4)
    field = (field - field.min()) / np.ptp(field)
    interior = 1 / (1 + np.exp(-(field - 0.55) * 40))
    foreground = 1 / (1 + np.exp(-(field - 0.45) * 40))
    boundary = foreground - interior
    return np.stack([1 - foreground, interior, boundary]).astype(np.float32)


@pytest.mark.parametrize("mode", ["instance", "binary"])
@pytest.mark.parametrize("chunks", [(37, 53), (128, 128)])
def test_chunked_instances_match_whole_image(tmp_path, mode, chunks, same_objects):
    probs = _blobs((230, 190))
    if mode == "binary":
        probs = probs[1:2] + probs[2:3]
    expected = probabilities_to_instances(probs, mode, min_size=8)
    lazy = da.from_array(probs, chunks=(probs.shape[0], *chunks))
    labels, n = instances_chunked(
        lazy,
        mode,
        tmp_path,
        interior_threshold=0.5,
        foreground_threshold=0.5,
        min_size=8,
        grow_depth=32,
        scheduler="threads",
    )
    got = labels.compute()
    assert got.dtype == np.uint32
    assert n == expected.max() == got.max() > 3
    assert same_objects(got, expected)


@pytest.mark.parametrize("overlap", [False, True])
def test_writer_stores_every_chunk_and_reports_failures(overlap):
    from napari_sa2net.inference.pipeline import _Writer

    target = np.zeros((1, 4, 6), np.float32)
    core = np.stack([np.full((2, 3), 2.0), np.full((2, 3), 4.0)])  # weighted sum, weight
    seen = []
    with _Writer(target, 1, seen.append, overlap) as writer:
        for bounds in [(0, 2, 0, 3), (0, 2, 3, 6), (2, 4, 0, 3), (2, 4, 3, 6)]:
            writer.put(bounds, (core.copy(), None, None, None))
    np.testing.assert_array_equal(target, 0.5)
    assert len(seen) == 4

    bad = np.stack([np.ones((2, 3)), np.zeros((2, 3))])  # weight 0: merge_chunk refuses
    with (
        pytest.raises(RuntimeError, match="covered by no tile"),
        _Writer(target, 1, None, overlap) as writer,
    ):
        writer.put((0, 2, 0, 3), (bad, None, None, None))
