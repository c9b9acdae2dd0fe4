"""Training targets and the random-crop sampler."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sa2net.engine.data import Augmentation, CropSampler, load_labelled_folder
from napari_sa2net.engine.metrics import aggregated_jaccard_index, instance_f1
from napari_sa2net.engine.targets import IGNORE, labels_to_classes, make_target
from napari_sa2net.inference.postprocess import probabilities_to_instances

from .conftest import touching_nuclei


def test_labels_to_classes_hand_case():
    labels = np.zeros((5, 8), np.uint16)
    labels[1:4, 1:4] = 1
    labels[1:4, 4:7] = 2  # touches object 1
    target = labels_to_classes(labels)
    expected = np.zeros((5, 8), np.uint8)
    expected[1:4, 1:7] = 2
    expected[2, 2] = expected[2, 5] = 1  # only the centres are interior
    np.testing.assert_array_equal(target, expected)


def test_image_edge_is_not_a_boundary():
    labels = np.ones((4, 4), np.uint16)
    assert np.all(labels_to_classes(labels) == 1)
    assert np.all(labels_to_classes(labels, boundary_width=2) == 1)
    with pytest.raises(ValueError, match="boundary_width"):
        labels_to_classes(labels, boundary_width=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_targets_round_trip_to_instances(seed):
    # 20 touching convex objects; very crowded scenes make slivers that a 1-px ring splits.
    labels = touching_nuclei((128, 128), n=20, radius=10, seed=seed)
    assert (labels_to_classes(labels) == 2).sum() > 300  # many shared borders
    onehot = np.eye(3, dtype=np.float32)[labels_to_classes(labels)].transpose(2, 0, 1)
    instances = probabilities_to_instances(onehot, "instance", min_size=0)
    assert instance_f1(labels, instances, 0.5).f1 == 1.0
    assert instance_f1(labels, instances, 0.75).f1 == 1.0
    assert aggregated_jaccard_index(labels, instances) > 0.99


def test_binary_target():
    labels = touching_nuclei(seed=3)
    np.testing.assert_array_equal(make_target(labels, "binary"), labels > 0)
    with pytest.raises(ValueError, match="mode"):
        make_target(labels, "semantic")


def sampler(seed: int = 0, **kwargs) -> CropSampler:
    labels = [touching_nuclei((80, 100), seed=s) for s in range(2)]
    images = [np.random.default_rng(s).random((80, 100, 2), dtype=np.float32) for s in range(2)]
    targets = [labels_to_classes(lab) for lab in labels]
    return CropSampler(images, targets, kwargs.pop("crop", 64), seed=seed, **kwargs)


def test_batches_have_the_right_shapes_and_values():
    x, y = sampler().batch(5)
    assert x.shape == (5, 2, 64, 64) and x.dtype == np.float32
    assert y.shape == (5, 64, 64) and y.dtype == np.uint8
    assert set(np.unique(y)) <= {0, 1, 2, IGNORE}


def test_sampling_is_deterministic_with_a_seed():
    a, b, c = sampler(7).batch(4), sampler(7).batch(4), sampler(8).batch(4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_rotated_crops_pad_with_ignore_and_keep_classes():
    s = sampler(augmentation=Augmentation(p_affine=1.0, max_rotation=30, scale_range=(0.8, 1.2)))
    x, y = s.batch(8)
    assert set(np.unique(y)) <= {0, 1, 2, IGNORE}
    assert np.isfinite(x).all()


def test_small_images_are_padded_and_padding_ignored():
    s = sampler(crop=128, augmentation=None)
    x, y = s.batch(3)
    assert x.shape == (3, 2, 128, 128)
    assert np.all(y[:, 80:, :] == IGNORE) and np.all(y[:, :, 100:] == IGNORE)


def test_foreground_bias_finds_sparse_objects():
    target = np.zeros((400, 400), np.uint8)
    target[10:20, 300:310] = 1
    image = np.zeros((400, 400, 1), np.float32)
    biased = CropSampler([image], [target], 32, foreground_bias=1.0, augmentation=None)
    hits = sum(int((biased.sample()[1] == 1).any()) for _ in range(20))
    assert hits == 20


def test_load_labelled_folder(tiny_folders):
    items = load_labelled_folder(tiny_folders["images"], tiny_folders["labels"])
    assert [it.name for it in items] == ["img0", "img1", "img2"]
    assert items[0].image.shape == (96, 96, 1)
    assert items[0].labels.shape == (96, 96) and items[0].labels.dtype == np.uint32


def test_contact_focus_centres_crops_where_objects_touch():
    from napari_sa2net.engine.targets import contact_pixels

    labels = np.zeros((300, 300), np.uint16)
    labels[20:40, 20:40], labels[250:270, 250:270], labels[250:270, 270:290] = 1, 2, 3
    target, image = labels_to_classes(labels), np.zeros((300, 300, 1), np.float32)
    focus = [contact_pixels(labels)]
    assert focus[0].any() and not focus[0][:100, :100].any()
    plain = CropSampler([image], [target], 32, augmentation=None, seed=0)
    focused = CropSampler(
        [image], [target], 32, augmentation=None, seed=0, focus=focus, focus_bias=1.0
    )
    touching = lambda s: sum(int((s.sample()[1] == 2).sum() > 30) for _ in range(20))  # noqa: E731
    assert touching(focused) == 20
    assert touching(plain) < 16
    off = CropSampler([image], [target], 32, augmentation=None, seed=0, focus=focus)
    np.testing.assert_array_equal(off.batch(3)[0], plain.batch(3)[0])  # bias 0: as without


def test_wide_augmentation_adds_acquisition_faults_and_basic_keeps_the_old_draws():
    from napari_sa2net.engine.augment import PRESETS, acquisition_faults

    assert Augmentation.preset("basic", 0.3) == Augmentation(scale_range=(1 / 1.3, 1.3))
    wide = Augmentation.preset("wide", 0.3)
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))[..., None]
    always = Augmentation(p_noise=1.0, noise_range=(0.1, 0.1))
    noisy = acquisition_faults(ramp.copy(), always, np.random.default_rng(0))
    assert 0.08 < np.std(noisy - ramp) < 0.2
    levels = acquisition_faults(
        ramp.copy(), Augmentation(p_quantize=1.0), np.random.default_rng(0)
    )
    assert len(np.unique(levels)) <= 65
    flat = acquisition_faults(ramp.copy(), Augmentation(p_saturate=1.0), np.random.default_rng(0))
    assert flat.max() == pytest.approx(1.0) and (flat == flat.max()).mean() > 0.1
    hazy = acquisition_faults(
        ramp.copy(), Augmentation(p_background=1.0), np.random.default_rng(0)
    )
    assert hazy.min() > 0.05 and hazy.max() <= 1.0 + 1e-6  # a raised floor, the top kept
    assert np.ptp(hazy) < np.ptp(ramp)  # less contrast over it
    assert wide.p_background > 0 and wide.noise_range[1] > Augmentation().noise_range[1]
    medium = Augmentation.preset("medium", 0.3)  # basic's geometry, fewer faulty crops
    assert medium.p_affine == Augmentation().p_affine and medium.gain_range == (0.8, 1.25)
    assert 0 < medium.p_noise < wide.p_noise and 0 < medium.p_background < wide.p_background
    noise = Augmentation.preset("noise", 0.3)  # shot + read noise only
    assert noise.p_noise > 0 and noise.p_background == noise.p_blur == 0
    photometric = Augmentation.preset("photometric", 0.3)  # only the faults of low light
    assert photometric.p_noise > 0 and photometric.p_background > 0
    assert photometric.p_blur == photometric.p_saturate == photometric.p_quantize == 0
    focus = Augmentation.preset("focus", 0.3)  # out of focus only, up to the 2-px blur scored
    assert focus.p_blur > 0 and focus.max_blur == 2.0
    assert focus.p_noise == focus.p_background == focus.p_saturate == focus.p_quantize == 0
    x, y = sampler(augmentation=wide).batch(16)
    assert np.isfinite(x).all() and set(np.unique(y)) <= {0, 1, 2, IGNORE}
    assert "wide" in PRESETS
    with pytest.raises(ValueError, match="augmentation must be one of"):
        Augmentation.preset("strong")


def test_an_id_painted_on_two_separate_nuclei_becomes_two_objects():
    from napari_sa2net.engine.targets import split_disconnected

    labels = np.zeros((40, 60), np.uint16)
    labels[5:15, 5:15] = 7
    labels[25:35, 40:50] = 7  # the same id on a second nucleus far away
    labels[5:15, 30:40] = 3
    labels[17:19, 40:43] = 3  # a 6-pixel slip of the brush near object 3
    split, n = split_disconnected(labels)
    assert n == 2
    assert sorted(np.unique(split).tolist()) == [0, 1, 2, 3]
    assert np.all(split[5:15, 5:15] == split[5, 5]) and split[30, 45] not in (0, split[5, 5])
    assert not split[17:19, 40:43].any()  # the slip is background
    kept = labels > 0
    kept[17:19, 40:43] = False
    np.testing.assert_array_equal(split > 0, kept)
    # a prediction that finds both nuclei scores perfectly against the split truth
    assert instance_f1(split, split).f1 == 1.0
    assert instance_f1(labels, split).f1 < 1.0
    # labels whose ids are each one piece come back untouched (no copy, ids kept)
    one = np.zeros((10, 10), np.uint16)
    one[2:5, 2:5], one[6:9, 6:9] = 4, 9
    same, n = split_disconnected(one)
    assert n == 0 and same is one


def test_load_labelled_folder_splits_reused_ids(tiny_folders):
    import tifffile

    path = sorted(tiny_folders["labels"].iterdir())[0]
    labels = np.zeros((96, 96), np.uint16)
    labels[10:30, 10:30] = labels[60:80, 60:80] = 5  # one id on two nuclei
    labels[10:30, 60:80] = 2
    tifffile.imwrite(path, labels)
    items = load_labelled_folder(tiny_folders["images"], tiny_folders["labels"])
    assert items[0].split_ids == 1 and items[1].split_ids == 0
    assert len(np.unique(items[0].labels)) == 4  # background and three objects
