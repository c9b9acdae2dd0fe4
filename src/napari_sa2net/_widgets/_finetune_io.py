"""Inputs and outputs of the finetune widget: layer arrays, regions, checkpoint path, preview."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ._layers import current_plane, rectangles_in, yx_transform

PREVIEW_NAME = "finetune preview"
#: Images above this many pixels are cropped to the annotated regions (plus context) before
#: finetuning, so a whole slide is never read into memory for a few painted areas.
CROP_ABOVE_PIXELS = 4096 * 4096
#: Context kept around the regions of a cropped slide, in pixels.
CROP_CONTEXT = 128


def _crop_to_regions(
    image: Any, labels: Any, regions: list[tuple[int, int, int, int]] | None
) -> tuple[Any, Any, list[tuple[int, int, int, int]] | None]:
    """Cut a big slide down to the regions' bounding box plus context, shifting the regions."""
    height, width = image.shape[:2]
    if regions is None or height * width <= CROP_ABOVE_PIXELS:
        return image, labels, regions
    y0 = max(0, min(r[0] for r in regions) - CROP_CONTEXT)
    x0 = max(0, min(r[1] for r in regions) - CROP_CONTEXT)
    y1 = min(height, max(r[2] for r in regions) + CROP_CONTEXT)
    x1 = min(width, max(r[3] for r in regions) + CROP_CONTEXT)
    shifted = [(a - y0, b - x0, c - y0, d - x0) for a, b, c, d in regions]
    return image[y0:y1, x0:x1], labels[y0:y1, x0:x1], shifted


def finetune_from(
    model: Any, device: str, image: Any, labels: Any, regions: Any, **options: Any
) -> Any:
    """A job: load the base model, read the annotated pixels, then run ``finetune_job``.

    Runs entirely in the worker thread (loading a checkpoint and reading a lazy slide can take
    a while); yields and returns what :func:`napari_sa2net.engine.finetune_job` does.
    """
    import numpy as np

    from ..engine import finetune_job
    from ..model import load_model

    image, labels, regions = _crop_to_regions(image, labels, regions)
    net = load_model(model, device=device)
    image, labels = np.asarray(image), np.asarray(labels)
    return (yield from finetune_job(net, image, labels, regions, device=device, **options))


def default_checkpoint_path(name: str) -> Path:
    """``~/sa2net-models/<name>-finetuned.pt`` (``-2``, ``-3``, ... when taken)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    folder = Path.home() / "sa2net-models"
    path, n = folder / f"{stem}-finetuned.pt", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-finetuned-{n}.pt"
    return path


def _check_painted(labels: Any, regions: Any, val_fraction: float) -> None:
    """The engine's refusal of annotations with nothing to learn from, before any job starts.

    Painted labels layers are numpy arrays; a lazy (file-backed) one is checked by the job
    itself, so a slide is never read here.
    """
    import numpy as np

    from ..engine.regions import plan_regions

    if isinstance(labels, np.ndarray):
        plan_regions(labels, regions, val_fraction)


def finetune_arguments(widget: Any) -> dict[str, Any]:
    """Keyword arguments for ``finetune_job`` from a :class:`FinetuneWidget`'s choices.

    Raises
    ------
    ValueError
        A missing layer, model or output path, labels that do not match the image plane, or
        nothing painted (inside the regions, or outside the held-out part).
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
    _check_painted(labels, regions, widget.val_fraction.value())
    model, out = widget.model.model(), widget.output.path()
    if model is None:
        raise ValueError("no base model: pick a bundled model or browse to a checkpoint (.pt)")
    if out is None or out.suffix != ".pt":
        raise ValueError(f"save path {out} must end in .pt, e.g. ~/sa2net-models/mine.pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    by_epochs = widget.unit.currentText() == "epochs"
    return {
        "model": model,
        "device": widget.device.device(),
        "image": image,
        "labels": labels,
        "regions": regions,
        "out": out,
        "epochs": widget.length.value() if by_epochs else None,
        "time_budget_minutes": None if by_epochs else float(widget.length.value()),
        "steps_per_epoch": widget.steps.value(),
        "lr": widget.lr.value(),
        "freeze_encoder": widget.freeze.isChecked(),
        "val_fraction": widget.val_fraction.value(),
    }


def show_preview(viewer: Any, event: Any, image_layer: Any) -> Any:
    """Show (or refresh) a finetune preview: the foreground probability of the held-out region.

    ``event.preview`` is ``K×h×w`` probabilities (class 0 = background) of ``event.preview_region``
    ``(y0, x0, y1, x1)``; the layer sits on that region of the image (same scale).
    """
    foreground = 1.0 - event.preview[0] if event.preview.shape[0] > 1 else event.preview[0]
    transform = yx_transform(image_layer)
    y0, x0 = event.preview_region[:2]
    scale = transform["scale"]
    origin = transform["translate"]
    translate = (origin[0] + y0 * scale[0], origin[1] + x0 * scale[1])
    if PREVIEW_NAME in viewer.layers:
        layer = viewer.layers[PREVIEW_NAME]
        layer.data = foreground
        layer.translate = translate
        return layer
    return viewer.add_image(
        foreground, name=PREVIEW_NAME, colormap="magma", opacity=0.6, blending="additive",
        contrast_limits=(0.0, 1.0), scale=scale, translate=translate,
    )  # fmt: skip
