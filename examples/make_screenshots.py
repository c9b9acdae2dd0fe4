"""Take the README screenshots of the three SA2-Net widgets in a real napari window.

Run under a virtual display (Linux)::

    xvfb-run -a python examples/make_screenshots.py --out docs/images

It opens the shipped nuclei sample, docks each widget through the plugin manifest (as the
Plugins menu does), runs it on the sample and saves ``segment.png``, ``finetune.png`` and
``batch.png``; then ``stack.png``: a 3-plane Z-stack made of the sample (each plane shifted by a
few pixels, as focus drift would), segmented every plane with measurements and Z stitching, with
the "SA2-Net objects" table docked and one object picked in it. The bundled default model is used
when installed; otherwise an untrained ``sa2net-tiny`` checkpoint is written to a temporary folder
and the pictures say so.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

PLUGIN = "napari-sa2net"


def wait_until_idle(widget, timeout: float = 600.0) -> None:
    """Let Qt run until the widget's job has finished (or ``timeout`` seconds pass)."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    QApplication.processEvents()
    while widget.worker is not None and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    for _ in range(20):
        QApplication.processEvents()


def pick_model(workdir: Path) -> tuple[str | Path, str]:
    """The bundled default model, else an untrained tiny checkpoint; with a caption."""
    from napari_sa2net.model import (
        DEFAULT_MODEL,
        create_model,
        list_bundled_models,
        save_checkpoint,
    )

    if DEFAULT_MODEL in list_bundled_models():
        return DEFAULT_MODEL, f"bundled model '{DEFAULT_MODEL}'"
    path = save_checkpoint(create_model("sa2net-tiny", num_classes=3), workdir / "untrained.pt")
    return path, "UNTRAINED sa2net-tiny (no bundled model installed)"


def choose(widget_picker, model) -> None:
    if isinstance(model, Path):
        widget_picker.add_checkpoint(model)
    else:
        widget_picker.setCurrentIndex(widget_picker.index_of(model))


def dock(viewer, name: str):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def close_docks(viewer) -> None:
    for widget in list(viewer.window.dock_widgets.values()):
        viewer.window.remove_dock_widget(widget)


def shoot(viewer, path: Path) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(10):
        QApplication.processEvents()
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    print(f"wrote {path}")


def segment_picture(viewer, model, out: Path):
    viewer.open_sample(PLUGIN, "nuclei")
    widget = dock(viewer, "SA2-Net segment")
    choose(widget.model, model)
    widget.run()
    wait_until_idle(widget)
    shoot(viewer, out / "segment.png")
    return widget


def stand_in_painting(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """What a user would paint inside ``box``: Otsu foreground split into connected nuclei.

    Only for the picture (no annotated copy of the sample ships with the package); real use
    paints with napari's brush.
    """
    from skimage.filters import threshold_otsu
    from skimage.measure import label
    from skimage.morphology import remove_small_objects

    region = (slice(box[0], box[2]), slice(box[1], box[3]))
    crop = image[region].astype(np.float32)
    nuclei = remove_small_objects(crop > threshold_otsu(crop), max_size=30)
    painted = np.zeros(image.shape, np.uint32)
    painted[region] = label(nuclei)
    return painted


def finetune_picture(viewer, model, out: Path, epochs: int, workdir: Path) -> None:
    image = viewer.layers["nuclei (fluorescence)"]
    box = (96, 96, 352, 352)  # y0, x0, y1, x1 of the "annotated" region
    viewer.layers.remove(f"{image.name} labels")
    painted = stand_in_painting(np.asarray(image.data), box)
    viewer.add_labels(painted, name="painted nuclei")
    rectangle = np.array([[box[0], box[1]], [box[2], box[3]]], float)
    viewer.add_shapes([rectangle], shape_type="rectangle", name="annotated regions",
                      edge_color="yellow", face_color="transparent", edge_width=3)  # fmt: skip
    widget = dock(viewer, "SA2-Net finetune")
    widget.labels.setCurrentText("painted nuclei")
    widget.regions.setCurrentText("annotated regions")
    choose(widget.model, model)
    widget.length.setValue(epochs)
    widget.steps.setValue(3)
    widget.output.set_path(workdir / "finetuned.pt")
    widget.start()
    wait_until_idle(widget)
    shoot(viewer, out / "finetune.png")


def batch_picture(viewer, model, out: Path, workdir: Path) -> None:
    import tifffile

    from napari_sa2net._sample_data import nuclei_fluorescence

    [(image, _, _)] = nuclei_fluorescence()
    inputs = workdir / "plate"
    inputs.mkdir()
    for i, (y, x) in enumerate([(0, 0), (0, 256), (256, 0), (256, 256)]):
        tifffile.imwrite(inputs / f"well_A{i + 1}.tif", image[y : y + 256, x : x + 256])
    (inputs / "well_B1.tif").write_bytes(b"truncated upload")
    for layer in [layer for layer in viewer.layers if layer.name != "nuclei (fluorescence)"]:
        viewer.layers.remove(layer)
    widget = dock(viewer, "SA2-Net batch")
    widget.input.set_path(inputs)
    widget.output.set_path(workdir / "labels")
    choose(widget.model, model)
    widget.run()
    wait_until_idle(widget)
    shoot(viewer, out / "batch.png")


def stack_picture(viewer, model, out: Path) -> None:
    from qtpy.QtCore import Qt

    from napari_sa2net._sample_data import nuclei_fluorescence

    viewer.layers.clear()
    [(image, _, _)] = nuclei_fluorescence()
    planes = np.stack([np.roll(image, (6 * z, 4 * z), (0, 1)) for z in range(3)])
    viewer.add_image(planes, name="stack", scale=(2.0, 0.65, 0.65), colormap="gray")
    widget = dock(viewer, "SA2-Net segment")
    choose(widget.model, model)
    widget.form.measure.setChecked(True)
    widget.form.stitch.setValue(0.25)
    widget.run()
    wait_until_idle(widget)
    print(f"stack: {widget.bar.status.text()}")
    close_docks(viewer)  # the table gets the dock's height
    table = dock(viewer, "SA2-Net objects")
    table.layers.setCurrentText("stack labels")
    area = table.model.columns.index("area_px")
    table.table.sortByColumn(area, Qt.SortOrder.DescendingOrder)
    table.table.selectRow(0)  # the largest object: selected in the layer, on its plane
    viewer.reset_view()
    shoot(viewer, out / "stack.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--epochs", type=int, default=3, help="finetune epochs for the picture")
    parser.add_argument("--only-stack", action="store_true", help="take stack.png alone")
    args = parser.parse_args()
    import napari

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sa2net-shots-") as tmp:
        workdir = Path(tmp)
        model, caption = pick_model(workdir)
        print(f"model: {caption}")
        viewer = napari.Viewer(show=True, title="napari — SA2-Net")
        viewer.window.resize(1400, 900)
        if args.only_stack:
            stack_picture(viewer, model, args.out)
            viewer.close()
            return
        segment_picture(viewer, model, args.out)
        close_docks(viewer)
        finetune_picture(viewer, model, args.out, args.epochs, workdir)
        close_docks(viewer)
        batch_picture(viewer, model, args.out, workdir)
        close_docks(viewer)
        stack_picture(viewer, model, args.out)
        viewer.close()


if __name__ == "__main__":
    main()
