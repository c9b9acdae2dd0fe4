"""The chunked path equals the whole-image path: probabilities exactly, instances id for id."""

from __future__ import annotations

import threading
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_sa2net.inference.merger import Chunking, merge_chunk
from napari_sa2net.inference.pipeline import Execution, predict_chunks, predict_in_memory
from napari_sa2net.inference.postprocess import probabilities_to_instances
from napari_sa2net.inference.predictor import Predictor, ZeroCostPredictor
from napari_sa2net.inference.tiling import TilePlan

STATS = (np.zeros(3), np.ones(3))


class OnTheCpu(ZeroCostPredictor):
    """The zero-cost predictor on the CPU's path: groups and stores run inline, one after the
    other (a host predictor gets a writer thread, whose timing made counts of live spills racy:
    16-18 in 1 run out of ~20 where 14 is right)."""

    device_type = "cpu"


def _into(target):
    def sink(bounds, probs):
        y0, y1, x0, x1 = bounds
        target[:, y0:y1, x0:x1] = probs
        return bounds

    return sink


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
    predictor = Predictor(identity(3), batch_size=2, activation="none", stats=STATS)
    plan = TilePlan(shape, tile, overlap)
    lazy = da.from_array(image, chunks=(*image_chunks, 3))
    probs = np.full((3, *shape), np.nan, np.float32)
    chunking = Chunking.regular(shape, chunk)
    stored = []

    def on_chunk(bounds, value):  # each chunk is reported once, after its pixels are stored
        y0, y1, x0, x1 = bounds
        assert value == bounds and not np.isnan(probs[:, y0:y1, x0:x1]).any()
        stored.append(bounds)

    predict_chunks(lazy, plan, chunking, predictor, frozenset(), _into(probs), on_chunk=on_chunk)
    np.testing.assert_array_equal(probs, np.moveaxis(image, -1, 0))
    assert sorted(stored) == sorted(chunking.bounds(*ij) for ij in chunking.indices())
    in_memory = predict_in_memory(image, plan, predictor)
    np.testing.assert_array_equal(probs, in_memory)


def test_threaded_groups_and_writers_store_every_chunk_once():
    rng = np.random.default_rng(1)
    image = (ndi.gaussian_filter(rng.random((300, 260)), 3) * 1000)[..., None].astype(np.uint16)
    stats = (np.array([0.0]), np.array([1000.0]))
    plan = TilePlan((300, 260), 64, 16)
    chunking = Chunking.regular((300, 260), 64)
    expected = np.zeros((3, 300, 260), np.float32)
    predict_chunks(image, plan, chunking, ZeroCostPredictor(3, 2, stats), frozenset(),
                   _into(expected))  # fmt: skip
    got = np.zeros_like(expected)
    seen, lock = [], threading.Lock()

    def sink(bounds, probs):
        with lock:
            seen.append(bounds)
        return _into(got)(bounds, probs)

    predictor = ZeroCostPredictor(3, 2, stats, concurrency=2)
    predict_chunks(image, plan, chunking, predictor, frozenset(), sink, Execution(workers=2))
    np.testing.assert_array_equal(got, expected)
    assert sorted(seen) == sorted(chunking.bounds(*ij) for ij in chunking.indices())


def test_a_failing_store_stops_the_run():
    image = np.ones((200, 200, 1), np.float32)
    plan = TilePlan((200, 200), 64, 16)

    def sink(bounds, probs):
        raise OSError(28, "No space left on device")

    predictor = ZeroCostPredictor(3, 2, (np.zeros(1), np.ones(1)), concurrency=2)
    with pytest.raises(OSError, match="No space"):
        predict_chunks(image, plan, Chunking.regular((200, 200), 64), predictor, frozenset(),
                       sink, Execution(workers=2))  # fmt: skip


def test_merge_refuses_a_pixel_without_weight():
    bad = np.stack([np.ones((2, 3)), np.zeros((2, 3))])  # weight 0
    with pytest.raises(RuntimeError, match="covered by no tile"):
        merge_chunk((2, 3), 1, bad)
    good = np.stack([np.full((2, 3), 2.0), np.full((2, 3), 4.0)])
    np.testing.assert_array_equal(merge_chunk((2, 3), 1, good), 0.5)


def _blobs(shape, seed=0, sigma=4):
    """3-class probabilities of touching blobs: background, interior, boundary.

    Smooth (no plateaus), like a network's output.
    """
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.random(shape), sigma)
    field = (field - field.min()) / np.ptp(field)
    interior = 1 / (1 + np.exp(-(field - 0.55) * 40))
    foreground = 1 / (1 + np.exp(-(field - 0.45) * 40))
    boundary = foreground - interior
    return np.stack([1 - foreground, interior, boundary]).astype(np.float32)


@pytest.mark.parametrize("mode", ["instance", "binary"])
@pytest.mark.parametrize("chunk", [37, 53, 128])
def test_chunked_instances_match_whole_image(mode, chunk, same_objects):
    probs = _blobs((230, 190))
    if mode == "binary":
        probs = probs[1:2] + probs[2:3]
    expected = probabilities_to_instances(probs, mode, min_size=8)
    got = probabilities_to_instances(probs, mode, min_size=8, chunk=chunk)
    assert got.dtype == np.uint32
    assert expected.max() == got.max() > 3
    assert same_objects(got, expected)
    np.testing.assert_array_equal(got, expected)  # the very same ids, not only the objects


def _large_nuclei(shape, nuclei, seed_radius=12):
    """Probabilities of big round nuclei ``(cy, cx, radius, seed offsets)``.

    The background probability rises smoothly from the centre (0.5 at the rim); each seed is a
    disc of interior at its offset from the centre; overlapping nuclei form one foreground
    region that the seeds must split.
    """
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    background = np.ones(shape, np.float32)
    interior = np.zeros(shape, np.float32)
    for cy, cx, radius, offsets in nuclei:
        distance = np.hypot(yy - cy, xx - cx) / radius
        background = np.minimum(background, np.clip(0.5 * distance**2, 0.0, 1.0))
        for dy, dx in offsets:
            inside = np.hypot(yy - cy - dy, xx - cx - dx) < seed_radius
            interior = np.maximum(interior, 0.9 * inside)
    interior = np.minimum(interior, 1.0 - background)
    return np.stack([background, interior, 1.0 - background - interior]).astype(np.float32)


@pytest.mark.parametrize("chunk", [64, 96, 128, 200])
def test_objects_larger_than_chunks_are_the_same_at_any_chunking(chunk, same_objects):
    # A 240-px nucleus whose only seed lies 94 px from its centre, a 200-px one, two touching
    # 200-px nuclei with a seed each (one region to split, across chunk borders and corners),
    # and a nucleus without any seed.
    nuclei = [
        (130, 130, 120, [(94, 0)]),
        (130, 390, 100, [(-60, 40)]),
        (380, 250, 100, [(30, -40)]),
        (380, 440, 100, [(-30, 40)]),
        (460, 60, 40, []),
    ]
    probs = _large_nuclei((520, 560), nuclei)
    whole = probabilities_to_instances(probs, "instance", min_size=8)
    got = probabilities_to_instances(probs, "instance", min_size=8, chunk=chunk)
    assert whole.max() == 5
    assert same_objects(got, whole)
    np.testing.assert_array_equal(got, whole)
    assert whole[130, 130] == whole[130, 30] == whole[130, 235] != 0  # one 240-px object
    assert whole[380, 250] != whole[380, 440]  # the touching pair is split


@pytest.mark.parametrize("chunk", [64, 112, 256])
def test_saturated_probabilities_of_real_nuclei_are_the_same_at_any_chunking(chunk):
    # Real nuclei through a zero-cost predictor: saturated probabilities make plateaus, on which
    # a watershed's ties decide split lines; flooding each component alone keeps them fixed.
    import tifffile

    from napari_sa2net.inference import segment
    from napari_sa2net.model import create_model

    image = tifffile.imread(Path(__file__).parents[1] / "data" / "nuclei_crop_image.tif")
    net = create_model("sa2net-tiny", 1, 3)
    net.metadata["halo"] = {"px": 32}  # not measured: the zero-cost predictor replaces it

    def run(chunk_edge):
        result = segment(image, model=net, device="cpu", tile=128, overlap=32,
                         chunk=chunk_edge, skip_background=False,
                         predictor=lambda stats: ZeroCostPredictor(3, 2, stats))  # fmt: skip
        return result.labels

    whole = run(256 * 16)
    assert whole.max() > 10
    np.testing.assert_array_equal(run(chunk), whole)


def test_each_blending_spill_is_freed_once_the_chunk_that_reads_it_is_merged(monkeypatch):
    import gc
    import weakref

    from napari_sa2net.inference import pipeline

    shape, chunk = (256, 320), 64  # 4 rows of 5 chunks; tiles reach past each chunk's edges
    image = np.ones((*shape, 1), np.float32)
    plan = TilePlan(shape, 48, 16)
    chunking = Chunking.regular(shape, chunk)
    spills: list[weakref.ref] = []
    split = pipeline.split_group

    def tracked(acc, bounds, **options):
        parts = split(acc, bounds, **options)
        spills.extend(weakref.ref(p) for p in parts[1:] if p.size)
        return parts

    monkeypatch.setattr(pipeline, "split_group", tracked)
    alive = []

    def sink(bounds, probs):
        gc.collect()
        alive.append(sum(ref() is not None for ref in spills))
        return bounds

    predict_chunks(image, plan, chunking, OnTheCpu(3, 2, (np.zeros(1), np.ones(1))),
                   frozenset(), sink)  # fmt: skip
    rows, cols = chunking.grid
    assert len(alive) == rows * cols and len(spills) > 2 * cols
    # About one chunk row of bottom and corner spills (plus those in hand), never two rows:
    # 14 here; keeping the row above until the row's end held 19.
    assert max(alive) <= 2 * cols + 4


def test_on_chunks_that_are_multiples_of_the_stride_spills_are_less_than_an_overlap(
    monkeypatch,
):
    # What waits between chunk rows is the bottom spill of each chunk (float64 planes as wide as
    # the slide). On chunks that are a multiple of the tile stride the last tiles of a chunk end
    # one overlap past it, and their outer 3/8 overlap weighs nothing: 20 rows here. Chunks off
    # the stride leave up to a tile's height (52 rows here with 112-px chunks). Above the last
    # row the last tiles are moved inward (off the stride) and reach further, but the last two
    # rows are merged column by column: each of those spills is merged as soon as it is made.
    import gc
    import weakref

    from napari_sa2net.inference import pipeline
    from napari_sa2net.inference.tiling import halo_of

    shape, overlap = (400, 460), 32
    image = np.random.default_rng(2).random((*shape, 1)).astype(np.float32)
    plan = TilePlan(shape, 64 + overlap, overlap)
    split = pipeline.split_group

    def run(chunk):
        chunking = Chunking.regular(shape, chunk)
        rows = chunking.grid[0]
        waiting, last = [], []

        def measured(acc, bounds, **options):
            parts = split(acc, bounds, **options)
            row = chunking.ys.index(bounds[0])
            if row < rows - 2:  # merged a whole chunk row later
                waiting.extend([parts[2].shape[1], parts[3].shape[1]])
            elif row == rows - 2:
                last.append(weakref.ref(parts[2]))
            return parts

        alive = []

        def sink(bounds, probs):
            gc.collect()
            alive.append(sum(ref() is not None for ref in last))
            return _into(out)(bounds, probs)

        monkeypatch.setattr(pipeline, "split_group", measured)
        out = np.zeros((3, *shape), np.float32)
        predict_chunks(image, plan, chunking, OnTheCpu(3, 2, (np.zeros(1), np.ones(1))),
                       frozenset(), sink)  # fmt: skip
        assert max(alive) <= 1 and len(last) == chunking.grid[1]
        return max(waiting), out

    aligned, probs = run(128)
    off_stride, other = run(112)
    assert 0 < aligned <= overlap - halo_of(overlap) < overlap < off_stride
    np.testing.assert_array_equal(probs, other)
    whole = predict_in_memory(image, plan, OnTheCpu(3, 2, (np.zeros(1), np.ones(1))))
    np.testing.assert_array_equal(probs, whole)


def test_the_merge_order_comes_after_every_neighbour_whose_spills_a_chunk_reads():
    for shape, chunk in (((400, 460), 128), ((100, 460), 128), ((400, 100), 128), ((64, 64), 64)):
        chunking = Chunking.regular(shape, chunk)
        order = chunking.merge_order()
        assert sorted(order) == sorted(chunking.indices())
        seen = set()
        for i, j in order:
            assert {(i, j - 1), (i - 1, j), (i - 1, j - 1)} & set(chunking.indices()) <= seen
            seen.add((i, j))


@pytest.mark.parametrize("num_maps", [1, 3, 4])
def test_a_background_groups_spills_are_one_weight_plane_that_merges_exactly(num_maps):
    from napari_sa2net.inference.merger import Accumulator, BackgroundSpill, split_group

    plan = TilePlan((200, 230), 64, 16)
    bounds = (0, 96, 0, 112)
    extent = (0, 200, 0, 230)
    acc = Accumulator(extent, num_maps, plan)
    acc.add_background(plan.tiles())
    sums = acc.to_host()
    full = split_group(sums, bounds)
    compact = split_group(sums, bounds, background=True)
    for whole, small in zip(full[1:], compact[1:]):
        assert isinstance(small, BackgroundSpill) and small.weight.ndim == 2
        assert small.shape == whole.shape
        np.testing.assert_array_equal(small.expand(), whole)
    # Merged into a neighbour's chunk alongside predicted sums: the same bits as the full spill.
    rng = np.random.default_rng(0)
    shape = (96, 112)
    core = rng.random((num_maps + 1, *shape)) + 0.5

    def merged(parts):
        return merge_chunk(shape, num_maps, core.copy(), *parts)

    expected = merged(full[1:])
    np.testing.assert_array_equal(merged(compact[1:]), expected)


def test_chunks_of_glass_hand_on_compact_spills_and_the_slide_comes_out_the_same(monkeypatch):
    # A mostly empty slide: tiles in ``skip`` are glass. The compact spills of all-glass groups
    # must give the very probabilities the full spills gave.
    from napari_sa2net.inference import pipeline
    from napari_sa2net.inference.merger import BackgroundSpill

    shape, chunk = (320, 384), 64
    image = np.random.default_rng(1).random((*shape, 1)).astype(np.float32)
    plan = TilePlan(shape, 48, 16)
    skip = frozenset(t.index for t in plan.tiles() if not (100 < t.y0 < 200 and t.x0 < 150))
    predictor = ZeroCostPredictor(3, 2, (np.zeros(1), np.ones(1)))
    chunking = Chunking.regular(shape, chunk)

    def run():
        out = np.zeros((3, *shape), np.float32)
        predict_chunks(image, plan, chunking, predictor, skip, _into(out))
        return out

    compact = run()
    split = pipeline.split_group
    kinds = []

    def full_spills(acc, bounds, background=False):
        parts = split(acc, bounds, background=background)
        kinds.extend(isinstance(p, BackgroundSpill) for p in parts[1:])
        return split(acc, bounds)

    monkeypatch.setattr(pipeline, "split_group", full_spills)
    expected = run()
    assert sum(kinds) > len(kinds) // 2  # most groups of this slide are glass
    np.testing.assert_array_equal(compact, expected)
