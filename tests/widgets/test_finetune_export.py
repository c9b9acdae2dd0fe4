"""The finetune widget's "Export for bioimage.io…" button: a background job writing a package."""

from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.gui


def test_export_button_writes_a_package_that_loads_back(
    make_napari_viewer, qtbot, tiny_checkpoint, tmp_path, monkeypatch
):
    pytest.importorskip("bioimageio.spec", reason="needs pip install 'napari-sa2net[bioimageio]'")
    import torch

    import napari_sa2net as sa2
    from napari_sa2net._widgets import _export
    from napari_sa2net._widgets.finetune import FinetuneWidget

    widget = FinetuneWidget(make_napari_viewer())
    # Before any finetuning the button exports the "Start from" model.
    widget.model.add_checkpoint(tiny_checkpoint)
    assert widget._export_source() == tiny_checkpoint.resolve()
    chosen = tmp_path / "pkg"  # the dialog's answer, without the suffix
    monkeypatch.setattr(_export.QFileDialog, "getSaveFileName", lambda *a: (str(chosen), ""))
    widget.export_button.click()
    assert not widget.export_button.isEnabled()  # busy while the job runs in the background
    qtbot.waitUntil(lambda: widget.export_button.isEnabled(), timeout=120_000)
    package = tmp_path / "pkg.zip"
    assert widget.bar.status.text().startswith(f"wrote {package}")
    loaded, base = sa2.load_model(package), sa2.load_model(tiny_checkpoint)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in base.state_dict().items())
    # After a run the checkpoint it saved (the finetuned model) is what gets exported.
    finetuned = tmp_path / "mine.pt"
    shutil.copy(tiny_checkpoint, finetuned)
    widget._out = finetuned
    assert widget._export_source() == finetuned
