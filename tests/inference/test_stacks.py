"""Z-stacks and time-lapses: every plane segmented, ids unique, labels keep the plane axes."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_sa2net.inference import segment_job
from napari_sa2net.inference.results import PlaneDone
from napari_sa2net.inference.settings import SettingError
from napari_sa2net.io import read_labels


def test_zstack_tiff_every_plane_with_unique_ids(stack_run, real_planes, tmp_path):
    stack = real_planes()
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZYX"})
    events = []
    result = stack_run(str(path), events, out=tmp_path / "out" / "stack.tif")
    labels, meta = read_labels(result.path)
    labels = np.asarray(labels)
    assert labels.shape == stack.shape and result.axes == meta["axes"] == "ZYX"
    planes = [e for e in events if e.stage == "plane"]
    assert [(e.level, e.current, e.total) for e in planes] == [(0, 1, 3), (0, 2, 3), (0, 3, 3)]
    assert all(isinstance(e.payload, PlaneDone) for e in planes)
    ids = [set(np.unique(plane[plane > 0])) for plane in labels]
    assert all(ids) and not (ids[0] & ids[1]) and not (ids[1] & ids[2])
    assert max(max(i) for i in ids) == result.n_objects == sum(len(i) for i in ids)
    for z, plane in enumerate(stack):  # each plane is the 2-D run of that plane, shifted
        alone = stack_run(plane).labels
        offset = sum(len(i) for i in ids[:z])
        np.testing.assert_array_equal(labels[z], np.where(alone > 0, alone + offset, 0))


def test_tcyx_array_gives_tyx_labels_and_plane_picks_one(stack_run, real_planes):
    stack = real_planes(2)
    image = np.stack([stack, stack[:, ::-1]], axis=1)  # T, C, Y, X: channel 0 is the nuclei
    result = stack_run(image, axes="TCYX", channel=0)
    assert result.axes == "TYX" and result.labels.shape == (2, 128, 128)
    events = []
    one = stack_run(image, events, axes="TCYX", channel=0, plane=1)
    assert one.axes == "YX" and not [e for e in events if e.stage == "plane"]
    plane_ids = result.labels[1]
    offset = len(np.unique(result.labels[0])) - 1
    np.testing.assert_array_equal(np.where(one.labels > 0, one.labels + offset, 0), plane_ids)


def _cellpose_stitch(masks: np.ndarray, threshold: float) -> np.ndarray:
    """Cellpose's stitch3D (utils.py), on whole planes: the reference for the chunked one."""
    masks = masks.astype(np.int64).copy()
    top = masks[0].max()
    for z in range(len(masks) - 1):
        above, below = masks[z + 1], masks[z]
        overlap = np.zeros((above.max() + 1, below.max() + 1))
        np.add.at(overlap, (above.ravel(), below.ravel()), 1)
        union = overlap.sum(1, keepdims=True) + overlap.sum(0, keepdims=True) - overlap
        iou = (overlap / np.maximum(union, 1))[1:, 1:]
        if not iou.size:
            continue
        iou[iou < threshold] = 0
        iou[iou < iou.max(axis=0)] = 0
        stitch = iou.argmax(axis=1) + 1
        new = np.flatnonzero(iou.max(axis=1) == 0)
        stitch[new] = np.arange(top + 1, top + len(new) + 1)
        top += len(new)
        masks[z + 1] = np.append(0, stitch)[masks[z + 1]]
    return masks


def test_stitch_z_equals_cellpose_and_keeps_one_id_through_z(stack_run, real_planes, tmp_path):
    stack = real_planes(4)
    plain = stack_run(stack, axes="ZYX")
    stitched = stack_run(stack, axes="ZYX", stitch_z=0.3, out=tmp_path / "s.zarr")
    labels = np.asarray(read_labels(stitched.path)[0])
    # Cellpose stitches planes numbered 1..n each (its per-plane masks)
    per_plane = [np.where(p > 0, p - p[p > 0].min() + 1, 0) for p in plain.labels]
    np.testing.assert_array_equal(labels, _cellpose_stitch(np.stack(per_plane), 0.3))
    assert stitched.n_objects == labels.max() < plain.n_objects  # shifted nuclei linked
    through = set(np.unique(labels[0])) & set(np.unique(labels[3])) - {0}
    assert through  # some nuclei keep one id from the first plane to the last


def test_cancel_mid_stack_leaves_nothing(tiny_net, real_planes, tmp_path):
    from napari_sa2net.inference.predictor import ZeroCostPredictor

    out = tmp_path / "out"
    job = segment_job(real_planes(3), model=tiny_net, axes="ZYX", measure=True,
                      predictor=lambda stats: ZeroCostPredictor(3, 2, stats),
                      export=("geojson", "imagej"), out=out / "s.zarr", device="cpu", tile=64,
                      overlap=32, chunk=64)  # fmt: skip
    for event in job:
        if event.stage == "plane":  # the first plane is done: stop here
            break
    job.close()
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.parametrize("step", [1, 3])
def test_cancel_while_measuring_leaves_nothing(tiny_net, real_planes, tmp_path, step):
    from napari_sa2net.inference.predictor import ZeroCostPredictor

    out = tmp_path / "out"
    job = segment_job(real_planes(2), model=tiny_net, axes="ZYX", measure=True,
                      predictor=lambda stats: ZeroCostPredictor(3, 2, stats),
                      export=("geojson", "imagej"), out=out / "s.tif", device="cpu", tile=64,
                      overlap=32, chunk=64)  # fmt: skip
    seen = []
    for event in job:
        seen.append(event.stage)
        if event.stage == "measure" and event.current == step:  # the partials are open
            break
    job.close()
    assert not out.exists() or not list(out.iterdir()), list(out.iterdir())
    assert seen.count("plane") == 2 and seen[-1] == "measure"


def test_bad_stack_settings_fail_before_any_work(tiny_net, real_planes, tmp_path):
    tiny = tiny_net
    stack = real_planes(2)
    with pytest.raises(SettingError, match=r"stitch_z=0.5 .* no Z axis"):
        next(segment_job(stack, model=tiny, axes="TYX", stitch_z=0.5))
    with pytest.raises(SettingError) as err:
        next(segment_job(stack, model=tiny, axes="ZYX", plane={"Z": 5}))
    assert err.value.for_cli() == "--plane Z=5 is out of range: axis Z has 0..1; use --plane Z=1"
    with pytest.raises(SettingError, match="export"):
        segment_job(stack, model=tiny, export="geojson")
    (tmp_path / "s_objects.csv").write_text("taken")
    with pytest.raises(FileExistsError, match=r"s_objects\.csv"):
        next(segment_job(stack, model=tiny, axes="ZYX", measure=True, out=tmp_path / "s.tif"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s_objects.csv"]
