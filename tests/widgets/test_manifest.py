"""The npe2 manifest validates, and every command it names imports."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


def test_manifest_validates_and_imports():
    npe2 = pytest.importorskip("npe2")
    from importlib.resources import files

    manifest = npe2.PluginManifest.from_file(files("napari_sa2net") / "napari.yaml")
    manifest.validate_imports()
    widgets = {w.display_name for w in manifest.contributions.widgets}
    assert widgets == {"SA2-Net segment", "SA2-Net finetune", "SA2-Net batch", "SA2-Net objects"}
    writers = {w.display_name for w in manifest.contributions.writers}
    assert {"QuPath GeoJSON detections", "ImageJ ROI set"} <= writers
    samples = {s.display_name for s in manifest.contributions.sample_data}
    assert samples == {"Nuclei (fluorescence)", "H&E region"}
