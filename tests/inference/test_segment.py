"""segment_job end to end with sa2net-tiny: seam-free tiling, dask == numpy, distributed == local,
bad input, cancel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_sa2net._progress import run_job
from napari_sa2net.inference import segment, segment_job
from napari_sa2net.inference.api import labels_of
from napari_sa2net.inference.pipeline import predict_in_memory
from napari_sa2net.inference.postprocess import probabilities_to_instances
from napari_sa2net.inference.predictor import Predictor
from napari_sa2net.inference.tiling import TilePlan, halo_of
from napari_sa2net.model import create_model, suggested_halo
from napari_sa2net.normalization import Normalization


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("sa2net-tiny", in_channels=1, num_classes=3).eval()


def _image(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (ndi.gaussian_filter(rng.random((size, size)), 3) * 4000).astype(np.uint16)


def _whole(model, image, stats) -> np.ndarray:
    x = Normalization.apply(image[..., None], *stats)
    with torch.inference_mode():
        logits = model(torch.from_numpy(np.moveaxis(x, -1, 0)[None].copy()))
    return torch.softmax(logits, 1)[0].numpy()


def _thresholds(probs: np.ndarray) -> dict[str, float]:
    # A random network has no notion of nuclei: pick thresholds that give many objects.
    return {
        "interior_threshold": float(np.quantile(probs[1], 0.8)),
        "foreground_threshold": float(np.quantile(1 - probs[0], 0.6)),
        "min_size": 4,
    }


def _seam_check(model, size, tile, same_objects):
    image = _image(size)
    stats = model.normalization.statistics(image[..., None])
    whole = _whole(model, image, stats)
    overlap = 3 * 64  # halo_of(192) = 72 >= the suggested halo
    assert halo_of(overlap) >= suggested_halo(model)
    predictor = Predictor(model, "cpu", batch_size=2, stats=stats)
    tiled = predict_in_memory(image[..., None], TilePlan(image.shape, tile, overlap), predictor)
    deviation = float(np.abs(tiled - whole).max())
    assert deviation < 1e-3, deviation
    # The check is sensitive: without a halo the tile borders show.
    no_halo = predict_in_memory(image[..., None], TilePlan(image.shape, tile, 0), predictor)
    assert float(np.abs(no_halo - whole).max()) > 10 * max(deviation, 1e-6)
    thresholds = _thresholds(whole)
    expected = probabilities_to_instances(whole, "instance", **thresholds)
    result = segment(
        image,
        model=model,
        tile=tile,
        overlap=overlap,
        device="cpu",
        skip_background=False,
        denoise=None,  # random texture reads as a noisy image: "auto" would smooth it,
        flatten=False,  # and as an unevenly lit one: "auto" would flatten it
        **thresholds,
    )
    assert result.n_objects == expected.max() > 20
    assert same_objects(result.labels, expected)


def test_seam_free_512(tiny, same_objects):
    _seam_check(tiny, 512, 256, same_objects)


def test_smoothed_tiles_are_seam_free(tiny):
    """``denoise``: each tile is blurred on its own, yet the blend equals the whole image
    blurred once, when the overlap covers the model's halo plus the kernel's reach."""
    from napari_sa2net.inference.denoise import smoothing_reach

    noise = np.random.default_rng(3).normal(0, 400, (384, 384))
    image = np.clip(_image(384, seed=2) + noise, 0, None).astype(np.uint16)
    stats = tiny.normalization.statistics(image[..., None])
    x = ndi.gaussian_filter(Normalization.apply(image[..., None], *stats)[..., 0], 1.5,
                            mode="mirror", truncate=3.0)  # fmt: skip
    with torch.inference_mode():
        whole = torch.softmax(tiny(torch.from_numpy(x[None, None].copy())), 1)[0].numpy()
    overlap = 192
    assert halo_of(overlap) >= suggested_halo(tiny) + smoothing_reach(1.5)
    predictor = Predictor(tiny, "cpu", batch_size=2, stats=stats, smooth=1.5)
    tiled = predict_in_memory(image[..., None], TilePlan(image.shape, 256, overlap), predictor)
    deviation = float(np.abs(tiled - whole).max())
    assert deviation < 1e-3, deviation
    sharp = Predictor(tiny, "cpu", batch_size=2, stats=stats)
    unblurred = predict_in_memory(image[..., None], TilePlan(image.shape, 256, overlap), sharp)
    assert float(np.abs(unblurred - whole).max()) > 10 * max(deviation, 1e-5)  # it did blur


@pytest.mark.slow
def test_seam_free_2048(tiny, same_objects):
    _seam_check(tiny, 2048, 512, same_objects)


def test_dask_path_equals_numpy_path_and_progress(tiny, tmp_path, same_objects):
    image = _image(300)
    kwargs = {
        "model": tiny,
        "tile": 128,
        "overlap": 96,
        "device": "cpu",
        "batch_size": 2,
        "interior_threshold": 0.34,
        "foreground_threshold": 0.6,
        "min_size": 4,
    }
    events = []
    in_memory = run_job(segment_job(image, **kwargs), events.append)
    tiles = [e for e in events if e.stage == "tile" and e.payload is None]  # one per batch
    n_tiles = len(TilePlan((300, 300), 128, 96))
    assert len(tiles) == -(-n_tiles // 2) and tiles[-1].current == n_tiles
    assert "tiles of 128²" in events[0].message and "GiB" in events[0].message
    chunked = segment(image, out=tmp_path / "x.zarr", chunk=128, **kwargs)
    assert chunked.path == tmp_path / "x.zarr" and chunked.n_objects == in_memory.n_objects
    assert same_objects(labels_of(chunked), in_memory.labels)
    assert chunked.provenance["tiling"]["tile"] == 128
    np.testing.assert_array_equal(labels_of(chunked), in_memory.labels)  # the very same ids
    assert [p.name for p in tmp_path.iterdir()] == ["x.zarr"]  # no scratch left
    with pytest.raises(FileExistsError):
        segment(image, out=tmp_path / "x.zarr", **kwargs)
    tif = segment(image, out=tmp_path / "x.tif", **kwargs)
    assert same_objects(labels_of(tif), in_memory.labels)


def test_distributed_equals_local(tiny, tmp_path, same_objects):
    distributed = pytest.importorskip("distributed")
    image = _image(256, seed=3)
    kwargs = {
        "model": tiny,
        "tile": 128,
        "overlap": 96,
        "device": "cpu",
        "chunk": 128,
        "interior_threshold": 0.34,
        "foreground_threshold": 0.6,
        "min_size": 4,
        "flatten": True,  # the field and the tiles' blur go to the workers too
        "denoise": 1.0,
    }
    local = segment(image, out=tmp_path / "local.zarr", **kwargs)
    assert local.provenance["flatten"]["applied"] and local.provenance["denoise"]["sigma"] == 1
    with (
        distributed.LocalCluster(
            processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = segment(image, out=tmp_path / "remote.zarr", scheduler=client, **kwargs)
    np.testing.assert_array_equal(labels_of(remote), labels_of(local))


def test_cancel_leaves_nothing(tiny, tmp_path):
    job = segment_job(
        _image(512),
        model=tiny,
        tile=128,
        overlap=32,
        device="cpu",
        batch_size=1,
        out=tmp_path / "x.zarr",
        chunk=256,
    )
    for event in job:
        if event.stage == "tile":
            break
    job.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tile": 128, "overlap": 128}, "smaller than tile"),
        ({"tile": 100}, "multiple of 16"),
        ({"channel": 3}, "channel"),
        ({"interior_threshold": 1.5}, "between 0 and 1"),
        ({"out": "x.png"}, ".zarr, .tif"),
    ],
)
def test_bad_arguments(tiny, kwargs, match):
    with pytest.raises(ValueError, match=match):
        segment(_image(64), model=tiny, device="cpu", **kwargs)


def test_wrong_channel_count_and_nan(tiny):
    rgb = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="channel"):
        segment(rgb, model=tiny, device="cpu")
    with pytest.raises(ValueError, match="finite"):
        segment(np.full((64, 64), np.nan, np.float32), model=tiny, device="cpu")
    image = _image(64).astype(np.float32)
    image[10:20, 10:20] = np.nan
    image[30, 30] = np.inf
    result = segment(image, model=tiny, device="cpu", tile=64, overlap=16)
    assert result.labels.shape == (64, 64) and result.labels.dtype == np.uint32


def test_tiny_images(tiny):
    with pytest.raises(ValueError, match="1×1"):  # refused by io.open_image, clearly
        segment(np.ones((1, 1), np.uint16), model=tiny, device="cpu")
    result = segment(_image(37)[:5], model=tiny, device="cpu")  # smaller than one tile
    assert result.labels.shape == (5, 37) and result.plan.grid == (1, 1)


@pytest.mark.gpu
def test_cuda_bf16_matches_cpu(tiny, same_objects):
    image = _image(256)
    kwargs = {
        "model": tiny,
        "tile": 128,
        "overlap": 96,
        "interior_threshold": 0.34,
        "foreground_threshold": 0.6,
        "min_size": 4,
    }
    cpu = segment(image, device="cpu", **kwargs)
    cuda = segment(image, device="cuda", amp=True, **kwargs)
    assert cuda.device.startswith("cuda") and cuda.provenance["amp"]
    assert np.mean((cuda.labels > 0) == (cpu.labels > 0)) > 0.95
    tiny.to("cpu")


def test_chunked_job_announces_a_preview_and_every_stored_chunk(tiny, tmp_path):
    from napari_sa2net.inference.results import BackgroundMap, ClassPreview, StoredChunk

    image = _image(300)
    job = segment_job(
        image, model=tiny, tile=128, overlap=32, device="cpu", out=tmp_path / "x.zarr", chunk=128
    )
    events = []
    result = run_job(job, events.append)
    payloads = [e.payload for e in events if e.payload is not None]
    assert all(e.stage == "tile" and e.level == 1 for e in events if e.payload is not None)
    assert isinstance(payloads[0], BackgroundMap)  # what the scan skipped: here nothing
    assert payloads[0].tiles_skipped == 0 and not payloads[0].skipped.any()
    info = payloads[1]  # announced before any chunk
    assert isinstance(info, ClassPreview)
    assert info.mode == "instance" and info.shape == info.image_shape == (300, 300)
    chunks = payloads[2:]
    assert len(chunks) == 9 and all(isinstance(c, StoredChunk) for c in chunks)
    covered = np.zeros(image.shape, np.int64)
    painted = np.zeros(image.shape, np.uint8)
    for chunk in chunks:
        assert chunk.preview is info
        y0, y1, x0, x1 = chunk.bounds
        assert chunk.classes.shape == (y1 - y0, x1 - x0) and chunk.classes.dtype == np.uint8
        covered[y0:y1, x0:x1] += 1
        painted[y0:y1, x0:x1] = chunk.classes
    assert (covered == 1).all()  # every pixel in exactly one announced chunk
    labels = labels_of(result)
    np.testing.assert_array_equal(painted > 0, labels > 0)  # the preview is the final mask
    assert set(np.unique(painted)) <= {0, 1, 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.zarr"]  # scratch removed at the end
    assert result.path == tmp_path / "x.zarr"


def test_in_memory_job_has_no_preview(tiny):
    from napari_sa2net.inference.results import BackgroundMap

    events = []
    run_job(segment_job(_image(128), model=tiny, device="cpu"), events.append)
    # Only the scan's background map; no class preview or stored chunks in memory.
    assert all(e.payload is None or isinstance(e.payload, BackgroundMap) for e in events)


def test_settings_are_checked_before_any_work(tiny, monkeypatch):
    import napari_sa2net.inference.plan as plan_module
    from napari_sa2net.inference import SettingError

    monkeypatch.setattr(plan_module, "plan_run", lambda *a: pytest.fail("work started"))
    with pytest.raises(SettingError, match=">= 16; use tile=16") as caught:
        segment_job(_image(64), model=tiny, tile=7)  # raised when the job is made
    assert caught.value.for_cli().startswith("--tile 7 must be")
    with pytest.raises(SettingError, match=r"multiple of 16.*; use overlap=32"):
        segment_job(_image(64), model=tiny, overlap=30)
    with pytest.raises(TypeError, match="unknown segmentation setting"):
        segment_job(_image(64), tiles=256)


def test_processes_cluster_equals_local(tiny, tmp_path):
    distributed = pytest.importorskip("distributed")
    image = _image(256, seed=4)
    kwargs = {"model": tiny, "tile": 128, "overlap": 96, "device": "cpu", "chunk": 128,
              "interior_threshold": 0.34, "foreground_threshold": 0.6, "min_size": 4}  # fmt: skip
    local = segment(image, out=tmp_path / "local.zarr", **kwargs)
    with (
        distributed.LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = segment(image, out=tmp_path / "remote.zarr", scheduler=client, **kwargs)
        threads = client.run(lambda: __import__("torch").get_num_threads())
    np.testing.assert_array_equal(labels_of(remote), labels_of(local))
    import os

    share = max(1, len(os.sched_getaffinity(0)) // 2)  # two worker processes on this machine
    assert set(threads.values()) == {share}


def test_a_killed_runs_scratch_is_removed_by_the_next_run(tiny, tmp_path):
    # A killed run leaves its hidden scratch (slides: gigabytes) next to the output.
    dead = tmp_path / ".sa2net-scratch.partial-999999999-0a1b2c3d"
    (dead / "objects").mkdir(parents=True)
    (dead / "objects" / "0.0").write_bytes(b"x" * 1000)
    alive = tmp_path / f".sa2net-scratch.partial-{__import__('os').getpid()}-deadbeef"
    alive.mkdir()  # a run of this (live) process: left alone
    segment(_image(64), model=tiny, device="cpu", out=tmp_path / "x.tif")
    assert not dead.exists() and alive.exists()


def test_chunks_smaller_than_a_tile_are_raised_to_one_tile(tiny, same_objects):
    # A tile spilling over a whole chunk left pixels without weight ("covered by no tile").
    image = _image(192)[:160]
    whole = segment(image, model=tiny, device="cpu", tile=128, overlap=32)
    small = segment(image, model=tiny, device="cpu", tile=128, overlap=32, chunk=64)
    assert small.plan.chunks == (128, 128)
    np.testing.assert_array_equal(small.labels, whole.labels)
    auto = segment(image, model=tiny, device="cpu", chunk=64)  # automatic tile > image
    assert max(auto.plan.chunks) == 192 and auto.labels.shape == image.shape


def test_a_centre_model_is_segmented_from_its_centre_map_at_any_chunking(tmp_path, same_objects):
    torch.manual_seed(1)
    model = create_model("sa2net-tiny", in_channels=1, num_classes=3, centre=True).eval()
    image = _image(300, seed=4)
    stats = model.normalization.statistics(image[..., None])
    predictor = Predictor(model, "cpu", batch_size=2, stats=stats)
    probs = predict_in_memory(image[..., None], TilePlan(image.shape, 256, 192), predictor)
    assert probs.shape == (4, 300, 300)
    np.testing.assert_allclose(probs[:3].sum(0), 1.0, atol=1e-5)
    thresholds = {  # a random network: thresholds that give many objects
        "interior_threshold": float(np.quantile(probs[3], 0.8)),
        "foreground_threshold": float(np.quantile(1 - probs[0], 0.5)),
        "min_size": 4,
    }
    kwargs = {"model": model, "tile": 256, "overlap": 192, "device": "cpu", "batch_size": 2,
              "skip_background": False, "denoise": None, "flatten": False, "diameter": None,
              **thresholds}  # fmt: skip
    in_memory = segment(image, **kwargs)
    assert in_memory.provenance["thresholds"]["seeds"] == "centre"
    expected = probabilities_to_instances(probs, "instance", **thresholds)
    assert in_memory.n_objects == expected.max() > 10
    assert same_objects(in_memory.labels, expected)
    chunked = segment(image, out=tmp_path / "c.zarr", chunk=128, **kwargs)
    np.testing.assert_array_equal(labels_of(chunked), in_memory.labels)
    # the interior seeds of the same maps give other objects: the centre map was used
    interior = probabilities_to_instances(probs[:3], "instance", **thresholds)
    assert not same_objects(interior, expected)
