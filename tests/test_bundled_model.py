"""The bundled default model: it ships, loads offline by name and segments real nuclei."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sa2net import load_model, segment
from napari_sa2net.engine.evaluation import score_labels
from napari_sa2net.model import DEFAULT_MODEL, list_bundled_models

DATA = Path(__file__).parent / "data"


def test_the_default_model_is_bundled_and_loads_by_name():
    assert DEFAULT_MODEL in list_bundled_models()
    model = load_model(DEFAULT_MODEL)
    assert (model.in_channels, model.num_classes) == (1, 3)
    assert model.metadata["training"]["metrics"]["val_f1"] > 0.9


def test_bundled_model_segments_a_real_annotated_crop():
    image = tifffile.imread(DATA / "nuclei_crop_image.tif")
    truth = tifffile.imread(DATA / "nuclei_crop_labels.tif")
    result = segment(image, device="cpu")
    scores = score_labels(truth, result.labels)
    # A 256² validation crop (29 nuclei): the whole-val F1 is 0.95; a crop's cut edge objects
    # and its own normalization cost a little.
    assert scores["dice"] > 0.93
    assert scores["f1_50"] > 0.88
    assert result.n_objects == pytest.approx(29, abs=5)


def test_a_loaded_model_object_keeps_its_checkpoint_hash_in_provenance():
    from napari_sa2net.model import model_hash

    model = load_model(DEFAULT_MODEL)
    image = tifffile.imread(DATA / "nuclei_crop_image.tif")
    result = segment(image, model=model, device="cpu")
    assert result.provenance["model"]["hash"] == model_hash(model.checkpoint_path)


def test_a_low_light_image_is_smoothed_and_segmented_like_a_well_exposed_one():
    """The crop as a photon-starved camera records it (25 photons at the brightest nuclei,
    Poisson + read noise): ``denoise="auto"`` measures the noise and smooths the tiles; off,
    the model's objects fall apart."""
    image = tifffile.imread(DATA / "nuclei_crop_image.tif").astype(np.float32)
    truth = tifffile.imread(DATA / "nuclei_crop_labels.tif")
    low, high = np.percentile(image, (1, 99.8))
    rng = np.random.default_rng(0)
    photons = rng.poisson(np.clip((image - low) / (high - low), 0, None) * 25 + 2)
    dark = np.clip((photons + rng.normal(0, 2, image.shape)) * 40 + 100, 0, 65535)
    dark = dark.astype(np.uint16)
    smoothed = segment(dark, device="cpu")
    assert smoothed.provenance["denoise"]["sigma"] == 1.0
    assert smoothed.provenance["denoise"]["noise"] > 0.04
    raw = segment(dark, device="cpu", denoise=None)
    assert raw.provenance["denoise"]["sigma"] is None
    f1_smoothed = score_labels(truth, smoothed.labels)["f1_50"]
    assert f1_smoothed > 0.8 and f1_smoothed > score_labels(truth, raw.labels)["f1_50"] + 0.2
    clean = segment(tifffile.imread(DATA / "nuclei_crop_image.tif"), device="cpu")
    assert clean.provenance["denoise"]["sigma"] is None  # a well-exposed image is left sharp


def test_an_unevenly_lit_image_is_flattened_and_segmented_like_an_even_one():
    """The crop under a background rising left to right to 0.9 of the nuclei's brightness (the
    nuclei's contrast shrinking with it): ``flatten="auto"`` subtracts the field; without it
    the bright side's background reads as nucleus and objects merge."""
    image = tifffile.imread(DATA / "nuclei_crop_image.tif").astype(np.float32)
    truth = tifffile.imread(DATA / "nuclei_crop_labels.tif")
    low, high = np.percentile(image, (1, 99.8))
    x = (image - low) / (high - low)
    ramp = np.linspace(0, 0.9, x.shape[1], dtype=np.float32)[None, :]
    lit = ((x * (1 - 0.4 * ramp / 0.9) + ramp) * 3000 + 100).astype(np.uint16)
    flat = segment(lit, device="cpu")
    assert flat.provenance["flatten"]["applied"]
    raw = segment(lit, device="cpu", flatten=False)
    f1 = score_labels(truth, flat.labels)["f1_50"]
    assert f1 > 0.8 and f1 > score_labels(truth, raw.labels)["f1_50"] + 0.2
    even = segment(tifffile.imread(DATA / "nuclei_crop_image.tif"), device="cpu")
    assert not even.provenance["flatten"]["applied"]  # evenly lit: left as it is
