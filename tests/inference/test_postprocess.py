"""Probability maps to instance labels."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sa2net.inference.postprocess import probabilities_to_instances


def three_class(shape=(20, 30)) -> np.ndarray:
    """Two touching squares (3-class one-hot) and one 1-px speck of foreground."""
    classes = np.zeros(shape, np.uint8)
    classes[2:10, 2:16] = 2  # boundary ring of both objects ...
    classes[3:9, 3:8] = 1  # ... with two separate interiors
    classes[3:9, 10:15] = 1
    classes[15, 25] = 2  # a speck with no interior
    return np.eye(3, dtype=np.float32)[classes].transpose(2, 0, 1)


def test_instance_mode_splits_touching_objects_and_keeps_seedless_blobs():
    labels = probabilities_to_instances(three_class(), "instance", min_size=0)
    assert labels.dtype == np.uint32
    assert sorted(np.unique(labels)) == [0, 1, 2, 3]
    left, right = labels[5, 4], labels[5, 12]
    assert left != right and 0 not in (left, right)
    assert labels[5, 8] == left and labels[5, 9] == right  # the shared border splits in half
    assert labels[15, 25] not in (0, left, right)


def test_min_size_removes_small_objects():
    labels = probabilities_to_instances(three_class(), "instance", min_size=5)
    assert sorted(np.unique(labels)) == [0, 1, 2]
    assert labels[15, 25] == 0


def test_interior_threshold_controls_seeds():
    probs = three_class()
    probs[:, 3:9, 10:15] = np.array([0.0, 0.4, 0.6])[:, None, None]  # weak right interior
    labels = probabilities_to_instances(probs, "instance", min_size=0)
    assert labels[5, 4] == labels[5, 12]  # one seed grows over both
    labels = probabilities_to_instances(probs, "instance", interior_threshold=0.3, min_size=0)
    assert labels[5, 4] != labels[5, 12]


def test_binary_mode_connected_components():
    fg = np.zeros((1, 10, 10), np.float32)
    fg[0, 1:4, 1:4] = 0.9
    fg[0, 6:9, 6:9] = 0.7
    fg[0, 0, 9] = 0.2
    labels = probabilities_to_instances(fg, "binary", min_size=0)
    assert sorted(np.unique(labels)) == [0, 1, 2]
    two = np.concatenate([1 - fg, fg])
    np.testing.assert_array_equal(probabilities_to_instances(two, "binary", min_size=0), labels)
    assert probabilities_to_instances(fg, "binary", foreground_threshold=0.8).max() == 0


@pytest.mark.parametrize(
    ("probs", "mode", "message"),
    [
        (np.zeros((10, 10)), "instance", "K×H×W"),
        (np.zeros((1, 10, 10)), "instance", "3 maps"),
        (np.zeros((3, 10, 10)), "binary", "1 \\(or 2\\) maps"),
        (np.zeros((3, 10, 10)), "semantic", "mode"),
    ],
)
def test_bad_input(probs, mode, message):
    with pytest.raises(ValueError, match=message):
        probabilities_to_instances(probs, mode)


def _edge_scene(shape=(64, 64)) -> np.ndarray:
    """Small objects (12 px) in the middle, on each edge and in a corner; and one component
    of two seeds that crosses the middle of the image and is cut by its left edge, whose
    left object is small (12 px) and on the edge."""
    classes = np.zeros(shape, np.uint8)
    for y, x in ((20, 20), (40, 40)):  # 3 x 4 objects inside the image
        classes[y : y + 3, x : x + 4] = 2
    classes[0:3, 10:14] = 2  # top edge
    classes[50:53, 60:64] = 2  # right edge
    classes[61:64, 30:34] = 2  # bottom edge
    classes[0:3, 60:64] = 2  # corner
    classes[28:36, 0:40] = 2  # the two-seed component, 8 rows high
    classes[29:35, 0:2] = 1  # its small left seed, on the edge ...
    classes[29:35, 8:38] = 1  # ... and a large one
    classes[28:36, 2] = 0  # a neck: the left object is 8 x 2 = 16 px
    classes[31:33, 2] = 2
    return np.eye(3, dtype=np.float32)[classes].transpose(2, 0, 1)


@pytest.mark.parametrize("chunk", [None, 16, 24, 40])
def test_objects_cut_by_the_image_edge_are_kept_down_to_a_quarter_of_min_size(chunk):
    probs = _edge_scene()
    labels = probabilities_to_instances(probs, "instance", min_size=40, chunk=chunk)
    for y, x in ((20, 20), (40, 40)):
        assert labels[y + 1, x + 1] == 0  # 12 px < 40: specks inside the field go
    for y, x in ((1, 11), (51, 62), (62, 31), (1, 61)):
        assert labels[y, x] > 0  # 12 px >= 40 // 4 on the edge: cut nuclei stay
    left, right = labels[32, 0], labels[32, 20]
    assert left > 0 and right > 0 and left != right  # the split object on the edge stays
    assert np.array_equal(labels, probabilities_to_instances(probs, "instance", min_size=40))
    # below a quarter of min_size, edge objects go too (and the small seed with them: the
    # component is then one object)
    labels = probabilities_to_instances(probs, "instance", min_size=80, chunk=chunk)
    assert labels[1, 11] == 0 and labels[51, 62] == 0
    assert labels[32, 0] == labels[32, 20] > 0


def _centre_scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Touching disks (truth) and 4 maps whose interior joins every pair of touching disks."""
    from napari_sa2net.engine.targets import centre_map

    rng = np.random.default_rng(seed)
    shape, n, radius = (96, 112), 14, 10.0
    centres = rng.uniform(radius, np.array(shape) - radius, size=(n, 2))
    yy, xx = np.indices(shape)
    dist = np.hypot(yy[None] - centres[:, 0, None, None], xx[None] - centres[:, 1, None, None])
    truth = (np.argmin(dist, axis=0) + 1).astype(np.uint16)
    truth[dist.min(axis=0) > radius] = 0
    probs = np.zeros((4, *shape), np.float32)
    probs[0] = truth == 0
    probs[1] = truth > 0  # one interior over touching objects: interior seeds merge them
    probs[3] = centre_map(truth)
    return truth, probs


@pytest.mark.parametrize("chunk", [None, 17, 32, 50])
def test_a_centre_map_seeds_one_object_per_nucleus_at_any_chunking(chunk):
    from napari_sa2net.engine.metrics import instance_f1

    truth, probs = _centre_scene()
    merged = probabilities_to_instances(probs[:3], "instance", min_size=0)
    labels = probabilities_to_instances(probs, "instance", min_size=0, chunk=chunk)
    assert instance_f1(truth, merged, 0.5).f1 < 0.8  # the interior alone merges them
    assert instance_f1(truth, labels, 0.9).f1 == 1.0  # the centre map splits every pair
    assert np.array_equal(labels, probabilities_to_instances(probs, "instance", min_size=0))


def test_the_seed_threshold_applies_to_the_centre_map():
    truth, probs = _centre_scene(1)
    n = len(np.unique(truth)) - 1
    assert probabilities_to_instances(probs, "instance", min_size=0).max() == n
    # above every peak there are no seeds: each foreground component is one object
    few = probabilities_to_instances(probs, "instance", min_size=0, interior_threshold=1.0)
    assert few.max() < n
