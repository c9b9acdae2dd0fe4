"""The segment widget's live preview: a Labels layer that fills in as the slide is predicted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui

THRESHOLDS = {"interior_threshold": 0.3, "foreground_threshold": 0.05}  # untrained model


@pytest.fixture
def crop256():
    from napari_sa2net._sample_data import nuclei_fluorescence

    [(data, _, _)] = nuclei_fluorescence()
    return np.ascontiguousarray(data[128:384, 128:384])


@pytest.fixture
def widget(make_napari_viewer, crop256, tiny_checkpoint, monkeypatch):
    """A segment widget on a 256² image, chunked in 2×2 chunks of 128² (tiles of 128²)."""
    from napari_sa2net._widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    viewer.add_image(crop256, name="nuclei", scale=(0.5, 0.5), translate=(10, 20))
    w = SegmentWidget(viewer)
    w.model.add_checkpoint(tiny_checkpoint)
    w.device.setCurrentIndex(w.device.findData("cpu"))  # compared with segment(device="cpu")
    w.tile.setValue(128)
    w.overlap.setValue(32)
    w.batch.setValue(1)
    w.interior.setValue(THRESHOLDS["interior_threshold"])
    w.foreground.setValue(THRESHOLDS["foreground_threshold"])
    w.chunk.setValue(128)
    return w


def _chunk_events(widget, on_chunk):
    from napari_sa2net.inference.results import StoredChunk

    def check(event):
        if isinstance(event.payload, StoredChunk):
            on_chunk(event)

    widget.worker.yielded.connect(check)


def test_preview_fills_in_and_takes_the_final_labels(qtbot, widget, tmp_path, tiny_checkpoint):
    from napari_sa2net.inference import segment
    from napari_sa2net.inference.api import labels_of

    widget.output.set_path(tmp_path / "out")
    widget.run()
    seen = []

    def on_chunk(event):
        if seen:
            return
        layer = widget.viewer.layers["nuclei labels (preview)"]
        assert widget.worker is not None  # the job is still running
        assert not isinstance(layer.data, np.ndarray)  # read lazily from the preview store
        assert layer.data.shape == (256, 256)
        assert tuple(layer.scale) == (0.5, 0.5) and tuple(layer.translate) == (10, 20)
        y0, y1, x0, x1 = event.payload.bounds
        assert np.asarray(layer.data[y0:y1, x0:x1]).any()  # nuclei shown where predicted
        layer.opacity = 0.3  # a user's choice that must survive the end of the job
        seen.append((layer, widget._preview.store.folder))

    _chunk_events(widget, on_chunk)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert seen, "no chunk event reached the GUI"
    layer, store = seen[0]
    assert widget.viewer.layers["nuclei labels"] is layer  # the same layer, final data
    assert layer.opacity == 0.3 and "nuclei labels (preview)" not in widget.viewer.layers
    assert tuple(layer.scale) == (0.5, 0.5) and tuple(layer.translate) == (10, 20)
    assert not store.exists()  # the preview store was deleted after the swap
    expected = segment(
        widget.viewer.layers["nuclei"].data,
        model=tiny_checkpoint,
        tile=128,
        overlap=32,
        batch_size=1,
        device="cpu",
        out=tmp_path / "ref.zarr",
        chunk=128,
        **THRESHOLDS,
    )
    assert expected.n_objects > 0
    np.testing.assert_array_equal(np.asarray(layer.data), labels_of(expected))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["nuclei_labels.zarr"]


def test_cancel_mid_run_leaves_no_preview_and_no_output(qtbot, widget, tmp_path):
    out = tmp_path / "out"
    widget.output.set_path(out)
    widget.run()
    stores: list[Path] = []

    def on_chunk(event):
        assert "nuclei labels (preview)" in widget.viewer.layers
        if not stores:
            stores.append(widget._preview.store.folder)
        widget.cancel()

    _chunk_events(widget, on_chunk)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert stores and not stores[0].exists()
    assert [layer.name for layer in widget.viewer.layers] == ["nuclei"]
    assert list(out.iterdir()) == []
    assert "cancelled" in widget.bar.status.text()


def test_error_after_the_preview_started_removes_it(qtbot, widget, tmp_path, monkeypatch):
    from napari_sa2net.inference import runner

    def fail(*_args, **_kwargs):
        raise ValueError("disk went away")

    monkeypatch.setattr(runner, "_provenance", fail)  # after every chunk has been predicted
    out = tmp_path / "out"
    widget.output.set_path(out)
    widget.run()
    stores: list[Path] = []
    _chunk_events(widget, lambda e: stores.append(widget._preview.store.folder))
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert stores and not stores[0].exists()
    assert [layer.name for layer in widget.viewer.layers] == ["nuclei"]
    assert list(out.iterdir()) == []
    assert "disk went away" in widget.bar.status.text()


def test_large_image_without_folder_previews_then_lands_in_memory(qtbot, widget, monkeypatch):
    from napari_sa2net.inference import settings

    monkeypatch.setattr(settings, "IN_MEMORY_MAX_PIXELS", 200 * 200)  # 256² counts as large
    widget.run()
    seen = []

    def on_chunk(event):
        layer = widget.viewer.layers[-1]
        seen.append((layer, layer.name, isinstance(layer.data, np.ndarray)))

    _chunk_events(widget, on_chunk)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert seen and seen[0][1:] == ("nuclei labels (preview)", False)  # lazy while running
    layer = widget.viewer.layers["nuclei labels"]
    assert layer is seen[0][0]  # the preview took the in-memory labels in place
    assert isinstance(layer.data, np.ndarray) and layer.data.dtype == np.uint32
    assert layer.data.max() > 0 and not layer.multiscale


def test_small_image_without_folder_has_no_preview(qtbot, widget):
    events = []
    widget.run()
    widget.worker.yielded.connect(lambda e: events.append(e.payload))
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    from napari_sa2net.inference.results import BackgroundMap

    assert events  # the in-memory path has no chunks to show, only the scan's map
    assert all(p is None or isinstance(p, BackgroundMap) for p in events)
    assert [layer.name for layer in widget.viewer.layers] == ["nuclei", "nuclei labels"]


def test_preview_pyramid_levels_are_strided_masks(tmp_path, monkeypatch):
    from napari_sa2net._widgets import _preview
    from napari_sa2net.inference.results import ClassPreview

    monkeypatch.setattr(_preview, "LEVEL_MIN_SIDE", 64)
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, (300, 170)).astype(np.uint8)
    info = ClassPreview("instance", (300, 170), (150, 85))
    store = _preview.PreviewStore(info, multiscale=True)
    assert store.shapes == [(300, 170), (150, 85), (75, 43), (38, 22)]
    bounds = (0, 101, 0, 77)  # odd bounds: strided rows / columns must line up
    store.write(bounds, classes[:101, :77])
    levels = store.layer_data()
    np.testing.assert_array_equal(levels[0][:101, :77], classes[:101, :77])
    assert not np.asarray(levels[0][101:]).any()  # unwritten chunks read as background
    for y0, y1, x0, x1 in ((101, 300, 0, 77), (0, 300, 77, 170)):
        store.write((y0, y1, x0, x1), classes[y0:y1, x0:x1])
    for k, level in enumerate(store.layer_data()):
        np.testing.assert_array_equal(level[:], classes[:: 2**k, :: 2**k])
    store.delete()
    assert not store.folder.exists()
    # napari may still slice a layer whose store is gone (e.g. a queued redraw): zeros, no error
    assert not np.asarray(levels[0][:64, :64]).any()


def test_preview_lies_over_the_image_when_rescaled():
    from types import SimpleNamespace

    from napari_sa2net._widgets._preview import preview_transform

    image = SimpleNamespace(scale=(1.0, 2.0, 2.0), translate=(0.0, 5.0, 7.0))
    info = SimpleNamespace(image_shape=(100, 100), shape=(200, 50))
    transform = preview_transform(image, info)
    # grid pixel i lies at image pixel i * step + (step - 1) / 2 (rescale's pixel centres)
    assert transform["scale"] == (1.0, 4.0)
    assert transform["translate"] == (5.0 - 0.5, 7.0 + 1.0)


def test_cpu_runs_use_small_chunks(widget, tmp_path):
    from napari_sa2net.inference.sizing import default_chunk

    widget.chunk.setValue(widget.chunk.minimum())  # "auto": the engine's rule decides
    widget.output.set_path(tmp_path / "out")
    assert widget.job_arguments()["settings"].chunk is None
    # the preview fills in every ~1024² on a CPU (accelerators: 2048², 4 tiles a side), never
    # below the tile: the first multiple of the tiles' stride whose output chunks stay large
    assert default_chunk("cpu", 640, 128) == 1024 and default_chunk("cpu", 512, 128) == 1152
    assert default_chunk("cuda", 512, 128) == 2304 and default_chunk("cuda", 1024, 128) == 4480
    assert default_chunk("cpu", 1536, 128) == 1536  # no multiple of 1408 up to 1.5 × 1536


@pytest.fixture
def pyramid_result(tmp_path):
    """A result written as an OME-Zarr pyramid (1100² → 2 levels), as the chunked job leaves."""
    from types import SimpleNamespace

    from napari_sa2net.io import write_ome_zarr_labels

    labels = np.zeros((1100, 1100), np.uint32)
    labels[100:200, 300:420] = 7
    path = write_ome_zarr_labels(tmp_path / "r.zarr", labels, {"n_objects": 1})
    return SimpleNamespace(labels=path, path=path, n_objects=1, metadata={})


@pytest.mark.parametrize(("multiscale", "written"), [(True, True), (False, True), (True, False)])
def test_final_labels_replace_the_preview(make_napari_viewer, pyramid_result, multiscale, written):
    import zarr

    from napari_sa2net._widgets._segment_output import replace_preview

    if not written:  # labels kept in memory: one level
        pyramid_result.labels = np.asarray(zarr.open_array(str(pyramid_result.path / "0")))
        pyramid_result.path = None
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((1100, 1100), np.uint16), name="im", scale=(2, 2))
    levels = [zarr.zeros(shape=(1100 // 2**k,) * 2, dtype="uint8") for k in range(2)]
    preview = viewer.add_labels(levels if multiscale else levels[0], name="im labels (preview)")
    viewer.add_points(name="on top")
    preview.opacity, preview.visible = 0.25, False
    layer, count = replace_preview(viewer, preview, pyramid_result, image)
    assert count == 1 and layer.multiscale == written and layer.name == "im labels"
    assert (layer is preview) == (multiscale == written)  # in place when napari allows it
    assert [x.name for x in viewer.layers] == ["im", "im labels", "on top"]  # same place
    assert layer.opacity == 0.25 and not layer.visible and tuple(layer.scale) == (2, 2)
    level0 = layer.data[0] if written else layer.data
    assert np.asarray(level0[150, 350]) == 7


def test_refresh_shows_new_data_at_the_coarsest_level(make_napari_viewer, tmp_path):
    """napari caches a pyramid's coarsest level; a zoomed-out preview must still fill in."""
    import zarr

    from napari_sa2net._widgets._preview import forget_cached_levels
    from napari_sa2net.io._zarr_compat import create_array

    viewer = make_napari_viewer()
    shapes = [(4096 >> k, 4096 >> k) for k in range(4)]
    writers = [
        create_array(tmp_path / str(k), shape=s, chunks=(512, 512), dtype="uint8", fill_value=0)
        for k, s in enumerate(shapes)
    ]
    levels = [zarr.open_array(str(tmp_path / str(k)), mode="r") for k in range(4)]
    layer = viewer.add_labels(levels, multiscale=True)
    layer.refresh()  # the coarsest level is read (and cached) while still empty
    coarsest = len(shapes) - 1
    assert np.asarray(layer._level_materializer(coarsest)).max() == 0
    for level in writers:
        level[: level.shape[0] // 2] = 1
    forget_cached_levels(layer)
    layer.refresh()
    assert np.asarray(layer._level_materializer(coarsest)).max() == 1
    if layer.data_level == coarsest:
        assert np.asarray(layer._slice.image.raw).max() == 1
