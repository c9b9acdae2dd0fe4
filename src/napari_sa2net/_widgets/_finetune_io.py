"""Inputs and outputs of the finetune widget: layer arrays, regions, checkpoint path, preview."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ._layers import current_plane, rectangles_in, yx_transform

PREVIEW_NAME = "finetune preview"


def default_checkpoint_path(name: str) -> Path:
    """``~/sa2net-models/<name>-finetuned.pt`` (``-2``, ``-3``, ... when taken)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    folder = Path.home() / "sa2net-models"
    path, n = folder / f"{stem}-finetuned.pt", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-finetuned-{n}.pt"
    return path


def finetune_arguments(widget: Any) -> dict[str, Any]:
    """Keyword arguments for ``finetune_job`` from a :class:`FinetuneWidget`'s choices.

    Raises
    ------
    ValueError
        A missing layer, model or output path, or labels that do not match the image plane.
    """
    image_layer, labels_layer = widget.image.layer(), widget.labels.layer()
    if image_layer is None or labels_layer is None:
        raise ValueError("pick an image layer and a labels layer with painted nuclei")
    image, _ = current_plane(image_layer, widget.viewer)
    labels, _ = current_plane(labels_layer, widget.viewer)
    if tuple(labels.shape[:2]) != tuple(image.shape[:2]):
        raise ValueError(
            f"labels layer '{labels_layer.name}' is {labels.shape[:2]} but image "
            f"'{image_layer.name}' is {image.shape[:2]}; paint into a labels layer made from "
            "the image (Layers > New Labels layer with the image selected)"
        )
    shapes = widget.regions.layer()
    regions = rectangles_in(shapes, image_layer) if shapes is not None else None
    if shapes is not None and not regions:
        raise ValueError(
            f"shapes layer '{shapes.name}' has no rectangle over the image; draw one around "
            "each annotated area, or pick the painted-nuclei boxes"
        )
    model, out = widget.model.model(), widget.output.path()
    if model is None:
        raise ValueError("no base model: pick a bundled model or browse to a checkpoint (.pt)")
    if out is None or out.suffix != ".pt":
        raise ValueError(f"save path {out} must end in .pt, e.g. ~/sa2net-models/mine.pt")
    by_epochs = widget.unit.currentText() == "epochs"
    return {
        "image": image,
        "labels": labels,
        "regions": regions,
        "model": model,
        "out": out,
        "epochs": widget.length.value() if by_epochs else None,
        "time_budget_minutes": None if by_epochs else float(widget.length.value()),
        "lr": widget.lr.value(),
        "freeze_encoder": widget.freeze.isChecked(),
        "val_fraction": widget.val_fraction.value(),
        "device": widget.device.device(),
    }


def show_preview(viewer: Any, preview: Any, image_layer: Any) -> Any:
    """Show (or refresh) the preview prediction as a Labels layer over the image."""
    if PREVIEW_NAME in viewer.layers:
        layer = viewer.layers[PREVIEW_NAME]
        layer.data = preview
        return layer
    transform = yx_transform(image_layer) if image_layer is not None else {}
    return viewer.add_labels(preview, name=PREVIEW_NAME, opacity=0.5, **transform)
