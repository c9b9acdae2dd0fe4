"""``denoise``: the Gaussian on the tiles, the auto rule, and the setting's checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_sa2net.inference.denoise import (
    AUTO_SIGMA,
    NOISE_THRESHOLD,
    denoise_sigma,
    relative_noise,
    smooth_batch,
)
from napari_sa2net.inference.predictor import Predictor
from napari_sa2net.inference.settings import SegmentSettings, SettingError


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.0])
def test_the_tile_blur_is_a_gaussian_reflected_at_the_tile_edge(sigma):
    x = np.random.default_rng(0).random((2, 3, 40, 33), dtype=np.float32)
    got = smooth_batch(torch.from_numpy(x), sigma).numpy()
    # scipy's "mirror" reflects about the edge pixel, as torch's "reflect" does
    want = ndi.gaussian_filter(x, (0, 0, sigma, sigma), mode="mirror", truncate=3.0)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert got.std() < x.std()


def test_the_predictor_smooths_what_the_model_sees(identity):
    tiles = [np.random.default_rng(1).random((32, 32, 1), dtype=np.float32)]
    stats = (np.zeros(1), np.ones(1))
    sharp = Predictor(identity(1), activation="none", stats=stats).predict(tiles, (32, 32))
    soft = Predictor(identity(1), activation="none", stats=stats, smooth=1.0)
    blurred = soft.predict(tiles, (32, 32))
    np.testing.assert_allclose(sharp[0, 0], tiles[0][..., 0], atol=1e-6)
    want = ndi.gaussian_filter(tiles[0][..., 0], 1.0, mode="mirror", truncate=3.0)
    np.testing.assert_allclose(blurred[0, 0], want, atol=1e-5)


def test_auto_smooths_only_images_whose_noise_reaches_the_threshold():
    stats = (np.array([100.0]), np.array([1100.0]))
    assert relative_noise(np.array([20.0]), stats) == pytest.approx(0.02)
    assert relative_noise(None, stats) is None
    assert denoise_sigma("auto", 0.02) is None
    assert denoise_sigma("auto", NOISE_THRESHOLD) == AUTO_SIGMA
    assert denoise_sigma("auto", None) is None  # nothing measured: left sharp
    assert denoise_sigma(None, 0.5) is None
    assert denoise_sigma(1.5, 0.0) == 1.5  # a given sigma applies whatever the noise
    two = (np.array([0.0, 0.0]), np.array([1000.0, 100.0]))  # the noisier channel decides
    assert relative_noise(np.array([10.0, 5.0]), two) == pytest.approx(0.05)


@pytest.mark.parametrize("bad", [0, -1, 6, True, "strong", [1]])
def test_a_bad_denoise_is_refused_naming_the_setting(bad):
    with pytest.raises(SettingError, match=r"denoise=.* must be a sigma in \(0, 5\] pixels"):
        SegmentSettings(denoise=bad)
    assert SegmentSettings(denoise=2).denoise == 2
    assert SegmentSettings().denoise == "auto"


def test_the_cli_reads_denoise_and_refuses_nonsense_in_one_line(tmp_path, capsys):
    import argparse

    from napari_sa2net.cli import main
    from napari_sa2net.cli._settings_args import denoise_value

    assert denoise_value("auto") == "auto" and denoise_value("OFF") is None
    assert denoise_value("1.5") == 1.5
    with pytest.raises(argparse.ArgumentTypeError, match="'lots' is not a smoothing"):
        denoise_value("lots")
    image = tmp_path / "x.tif"
    image.write_bytes(b"")
    assert main(["segment", str(image), "--out", str(tmp_path / "o"), "--denoise", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--denoise 9" in err and "use --denoise 1" in err
