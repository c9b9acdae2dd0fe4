"""Predict + merge with an identity model: the tiler must reproduce its input exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sa2net.inference.merger import Accumulator, Chunking, background_probabilities
from napari_sa2net.inference.pipeline import predict_group, predict_in_memory
from napari_sa2net.inference.predictor import Predictor, ZeroCostPredictor, pad_tiles
from napari_sa2net.inference.scan import scan
from napari_sa2net.inference.tiling import TilePlan
from napari_sa2net.normalization import Normalization

IDENTITY_STATS = (np.zeros(3), np.ones(3))


def _identity_predictor(identity, **kwargs):
    return Predictor(identity(3), activation="none", stats=IDENTITY_STATS, **kwargs)


@pytest.mark.parametrize(
    ("shape", "tile", "overlap"),
    [((1, 1), 64, 16), ((37, 301), 64, 16), ((203, 157), 64, 32), ((129, 130), 128, 0)],
)
@pytest.mark.parametrize("batch_size", [1, 3])
def test_identity_reproduces_input_exactly(identity, shape, tile, overlap, batch_size):
    image = np.random.default_rng(0).random((*shape, 3), dtype=np.float32)
    predictor = _identity_predictor(identity, batch_size=batch_size)
    plan = TilePlan(shape, tile, overlap)
    out = predict_in_memory(image, plan, predictor)
    assert out.dtype == np.float32 and out.shape == (3, *shape)
    np.testing.assert_array_equal(out, np.moveaxis(image, -1, 0))


def test_softmax_path_reproduces_probabilities(identity):
    rng = np.random.default_rng(1)
    probs = rng.random((90, 77, 3)) + 0.05
    probs = (probs / probs.sum(-1, keepdims=True)).astype(np.float32)
    predictor = Predictor(identity(3), batch_size=2, stats=IDENTITY_STATS)
    logits = np.log(probs)  # softmax(log p) = p for p summing to 1
    plan = TilePlan((90, 77), 48, 16)
    out = predict_in_memory(logits, plan, predictor)
    np.testing.assert_allclose(out, np.moveaxis(probs, -1, 0), atol=1e-6)


def test_flat_tiles_are_skipped_as_background(identity):
    image = np.zeros((256, 256, 3), np.float32)
    image[:40, :40] = np.random.default_rng(2).random((40, 40, 3))
    model = identity(3)
    predictor = Predictor(model, batch_size=1, activation="none", stats=IDENTITY_STATS)
    plan = TilePlan((256, 256), 64, 16)
    skip = scan(image, plan, Normalization(), skip_background=True).skip
    out = predict_in_memory(image, plan, predictor, skip)
    assert model.calls < len(plan)  # most tiles are flat zeros
    far = out[:, 128:, 128:]
    np.testing.assert_array_equal(
        far, background_probabilities(3)[:, None, None] * np.ones_like(far)
    )
    np.testing.assert_array_equal(out[:, :16, :16], np.moveaxis(image[:16, :16], -1, 0))


def test_group_accumulation_holds_weights(identity):
    plan = TilePlan((100, 100), 48, 16)
    image = np.ones((100, 100, 3), np.float32)
    acc = predict_group(
        image, (0, 100, 0, 100), plan.tiles(), plan, _identity_predictor(identity)
    ).to_host()
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


def _blend(plan, tiles, flat, kept, device=None, as_tensor=False):
    acc = Accumulator((0, 100, 0, 90), 3, plan, device)
    acc.add_background([t for t, f in zip(tiles, flat) if f])
    acc.add(
        [t for t, f in zip(tiles, flat) if not f], torch.from_numpy(kept) if as_tensor else kept
    )
    return acc.to_host()


def test_device_blending_equals_host_blending():
    plan, tiles, flat, kept = _batch_inputs()
    host = _blend(plan, tiles, flat, kept)
    tensors = _blend(plan, tiles, flat, kept, as_tensor=True)
    np.testing.assert_array_equal(tensors, host)
    weights = sum(np.pad(plan.window(t), ((t.y0, 100 - t.y1), (t.x0, 90 - t.x1))) for t in tiles)
    np.testing.assert_allclose(host[3], weights, rtol=1e-5)  # every weight (but EPS margins)


@pytest.mark.gpu
def test_cuda_group_accumulation_equals_cpu(identity):
    plan = TilePlan((300, 260), 64, 16)
    image = np.random.default_rng(1).random((300, 260, 3)).astype(np.float32)
    args = ((0, 300, 0, 260), plan.tiles(), plan)
    cpu = predict_group(image, *args, _identity_predictor(identity)).to_host()
    cuda = _identity_predictor(identity, device="cuda", batch_size=3)
    gpu = predict_group(image, *args, cuda).to_host()
    np.testing.assert_allclose(gpu, cpu, rtol=1e-12, atol=0)
    whole = predict_in_memory(image, plan, cuda)
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
    with pytest.raises(ValueError, match="batch_size"):
        ZeroCostPredictor(batch_size=0)


def test_predictor_normalizes_raw_tiles_with_the_slide_statistics(identity):
    raw = np.full((1, 8, 8, 3), 300.0, np.float32)
    stats = (np.full(3, 100.0), np.full(3, 500.0))
    probs = Predictor(identity(3), activation="none", stats=stats).predict(list(raw), (8, 8))
    np.testing.assert_allclose(probs, 0.5)  # (300 - 100) / (500 - 100)


def test_zero_cost_predictor_gives_objects_with_seeds():
    tiles = [np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8, 1)]
    probs = ZeroCostPredictor(3).predict(tiles, (8, 8))
    assert probs.shape == (1, 3, 8, 8) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert probs[0, 0, 0, 0] == 1.0 and probs[0, 1, -1, -1] == 1.0  # dark: bg; bright: interior


def test_test_time_augmentation_inverts_every_transform(identity):
    # An identity "model" sees each flipped / turned tile and hands it back: undoing each
    # transform must give the tile itself, whatever the number averaged.
    image = np.random.default_rng(4).random((96, 96, 3), dtype=np.float32)
    plan = TilePlan((96, 96), 64, 16)
    for tta in (1, 2, 4, 8):
        predictor = _identity_predictor(identity, tta=tta, batch_size=1)
        out = predict_in_memory(image, plan, predictor)
        np.testing.assert_allclose(out, np.moveaxis(image, -1, 0), rtol=1e-6)
        assert predictor.model.calls == tta * len(plan)
    with pytest.raises(ValueError, match="tta"):
        _identity_predictor(identity, tta=3)


def test_test_time_augmentation_averages_an_asymmetric_model():
    class Left(torch.nn.Module):  # probability of class 1 grows from left to right
        num_classes = 2

        def forward(self, x):
            ramp = torch.linspace(-3, 3, x.shape[-1]).expand_as(x[:, :1])
            return torch.cat([-ramp, ramp], 1)

    tiles = [np.zeros((32, 32, 1), np.float32)]
    plain = Predictor(Left(), tta=1).predict(tiles, (32, 32))
    flipped = Predictor(Left(), tta=2).predict(tiles, (32, 32))
    assert plain[0, 1, 0, -1] > 0.99 and plain[0, 1, 0, 0] < 0.01
    np.testing.assert_allclose(flipped[0, 1], 0.5, atol=1e-6)  # a ramp and its mirror average


def test_a_cpu_predictor_runs_the_model_channels_last_and_hands_back_plain_arrays():
    from napari_sa2net.model import create_model

    net = create_model("sa2net-tiny", 1, 3)
    predictor = Predictor(net, "cpu", batch_size=2, stats=(np.zeros(1), np.ones(1)))
    convs = [p for p in net.parameters() if p.ndim == 4 and p.shape[1] > 1]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    rng = np.random.default_rng(0)
    tiles = [rng.random((64, 48, 1), dtype=np.float32) for _ in range(2)]
    out = predictor.predict(tiles, (64, 48))
    assert out.shape == (2, 3, 64, 48) and out.flags.c_contiguous
    with torch.inference_mode():
        plain = torch.softmax(net(torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2)), 1)
    np.testing.assert_allclose(out, plain.numpy(), atol=1e-6)
