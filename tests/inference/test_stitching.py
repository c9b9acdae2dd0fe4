"""Predict + merge with an identity model: the tiler must reproduce its input exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sa2net.inference.predictor import Predictor, pad_tiles
from napari_sa2net.inference.stitching import (
    Chunking,
    _add_batch,
    accumulate_group,
    add_batch_torch,
    background_probabilities,
    predict_in_memory,
)
from napari_sa2net.inference.tiling import TilePlan

IDENTITY_STATS = (np.zeros(3), np.ones(3))


@pytest.mark.parametrize(
    ("shape", "tile", "overlap"),
    [((1, 1), 64, 16), ((37, 301), 64, 16), ((203, 157), 64, 32), ((129, 130), 128, 0)],
)
@pytest.mark.parametrize("batch_size", [1, 3])
def test_identity_reproduces_input_exactly(identity, shape, tile, overlap, batch_size):
    image = np.random.default_rng(0).random((*shape, 3), dtype=np.float32)
    predictor = Predictor(identity(3), batch_size=batch_size, activation="none")
    plan = TilePlan(shape, tile, overlap)
    out = predict_in_memory(image, plan, predictor, IDENTITY_STATS, 3, flat_range=None)
    assert out.dtype == np.float32 and out.shape == (3, *shape)
    np.testing.assert_array_equal(out, np.moveaxis(image, -1, 0))


def test_softmax_path_reproduces_probabilities(identity):
    rng = np.random.default_rng(1)
    probs = rng.random((90, 77, 3)) + 0.05
    probs = (probs / probs.sum(-1, keepdims=True)).astype(np.float32)
    predictor = Predictor(identity(3), batch_size=2)
    logits = np.log(probs)  # softmax(log p) = p for p summing to 1
    plan = TilePlan((90, 77), 48, 16)
    out = predict_in_memory(logits, plan, predictor, (np.zeros(3), np.ones(3)), 3, None)
    np.testing.assert_allclose(out, np.moveaxis(probs, -1, 0), atol=1e-6)


def test_flat_tiles_are_skipped_as_background(identity):
    image = np.zeros((256, 256, 3), np.float32)
    image[:40, :40] = np.random.default_rng(2).random((40, 40, 3))
    model = identity(3)
    predictor = Predictor(model, batch_size=1, activation="none")
    plan = TilePlan((256, 256), 64, 16)
    out = predict_in_memory(image, plan, predictor, IDENTITY_STATS, 3, flat_range=0.02)
    assert model.calls < len(plan)  # most tiles are flat zeros
    far = out[:, 128:, 128:]
    np.testing.assert_array_equal(
        far, background_probabilities(3)[:, None, None] * np.ones_like(far)
    )
    np.testing.assert_array_equal(out[:, :16, :16], np.moveaxis(image[:16, :16], -1, 0))


def test_group_accumulation_holds_weights(identity):
    plan = TilePlan((100, 100), 48, 16)
    image = np.ones((100, 100, 3), np.float32)
    acc = accumulate_group(
        image,
        (0, 100, 0, 100),
        plan.tiles(),
        plan,
        Predictor(identity(3), activation="none"),
        IDENTITY_STATS,
        3,
    )
    np.testing.assert_allclose(acc[:3], acc[3][None].repeat(3, 0))
    assert acc[3].min() > 0


def _batch_inputs():
    plan = TilePlan((100, 90), 48, 16)
    tiles = plan.tiles()
    rng = np.random.default_rng(3)
    probs = rng.random((len(tiles), 3, 48, 48)).astype(np.float32)
    flat = [k % 3 == 1 for k in range(len(tiles))]
    kept = probs[[k for k, f in enumerate(flat) if not f]]
    return plan, tiles, flat, kept


def test_device_blending_equals_host_blending():
    plan, tiles, flat, kept = _batch_inputs()
    host = np.zeros((4, 100, 90))
    _add_batch(host, (0, 100, 0, 90), tiles, flat, kept, plan, 3)
    dev = torch.zeros((4, 100, 90), dtype=torch.float64)
    add_batch_torch(dev, (0, 100, 0, 90), tiles, flat, torch.from_numpy(kept), plan, 3)
    np.testing.assert_array_equal(dev.numpy(), host)


@pytest.mark.gpu
def test_cuda_group_accumulation_equals_cpu(identity):
    plan = TilePlan((300, 260), 64, 16)
    image = np.random.default_rng(1).random((300, 260, 3)).astype(np.float32)
    args = ((0, 300, 0, 260), plan.tiles(), plan)
    cpu = accumulate_group(image, *args, Predictor(identity(3), activation="none"),
                           IDENTITY_STATS, 3)  # fmt: skip
    cuda = Predictor(identity(3), "cuda", activation="none", batch_size=3)
    gpu = accumulate_group(image, *args, cuda, IDENTITY_STATS, 3)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-12, atol=0)
    whole = predict_in_memory(image, plan, cuda, IDENTITY_STATS, 3, None)
    np.testing.assert_array_equal(whole, np.moveaxis(image, -1, 0))  # divided on the device


def test_predictor_tokenizes_cheaply_and_stably():
    from dask.base import tokenize

    predictor = Predictor(torch.nn.Conv2d(1, 1, 1))
    assert tokenize(predictor) == tokenize(predictor)
    assert tokenize(predictor) != tokenize(Predictor(torch.nn.Conv2d(1, 1, 1)))


def test_pad_tiles_reflects_bottom_right():
    tile = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    batch = pad_tiles([tile], (5, 6))
    assert batch.shape == (1, 1, 5, 6)
    np.testing.assert_array_equal(batch[0, 0, :3, :4], tile[..., 0])
    np.testing.assert_array_equal(
        batch[0, 0, 3], [*tile[1, :, 0].tolist(), tile[1, 2, 0], tile[1, 1, 0]]
    )


def test_chunking_regular():
    chunking = Chunking.regular((1000, 300), 256)
    assert chunking.grid == (4, 2)
    assert chunking.dask_chunks() == ((256, 256, 256, 232), (256, 44))


def test_predictor_rejects_bad_batch(identity):
    with pytest.raises(ValueError, match="batch_size"):
        Predictor(identity(1), batch_size=0)
