"""The model card (README.md) and cover image of an exported bioimage.io package.

The card says what the spec's fields cannot: how the instances are derived from the
probabilities, why the normalization is what it is, what data the weights come from and under
which notice, the recipe, the figures, and the parent of a finetuned model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..model.bundled import BUNDLED_DIR
from .facts import PackageFacts

CITATION = (
    'M. Fiaz et al., "SA2-Net: Scale-aware Attention Network for Microscopic Image '
    'Segmentation", BMVC 2023 (arXiv:2309.16661)'
)

INSTANCES = """\
## From probabilities to instances

The bioimage.io spec cannot express this step, so a consumer that only applies the package gets
the probability maps. napari-sa2net turns them into instance labels like this
(`napari_sa2net.inference.postprocess.probabilities_to_instances`, default thresholds):

1. foreground = `1 - p(background) > 0.5`;
2. seeds = 8-connected components of `p(interior) > 0.5` inside the foreground (seeds smaller
   than 4 px are dropped);
3. each seed is grown into the foreground by a watershed on `p(background)` (8-connectivity),
   so a boundary pixel joins the seed it is geodesically nearest to;
4. foreground blobs that hold no seed become objects of their own; objects under 16 px are
   dropped; ids are renumbered 1..N.

`sa2net segment IMAGE --model THIS.zip` (or the napari plugin's model picker) loads this package
and runs exactly these steps, tiled, with one normalization per image.
"""

CENTRE = """\
## From probabilities to instances

The bioimage.io spec cannot express this step, so a consumer that only applies the package gets
the probability maps. The last map, `centre`, is each nucleus' distance to its own edge divided
by its largest such distance (1 at its centre, falling to 0 where it meets background or another
nucleus). napari-sa2net turns the maps into instance labels like this
(`napari_sa2net.inference.postprocess.probabilities_to_instances`, default thresholds):

1. foreground = `1 - p(background) > 0.5`;
2. seeds = 8-connected components of `centre > 0.5` inside the foreground (seeds smaller
   than 4 px are dropped);
3. each seed is grown into the foreground by a watershed on `(p(background) + 1 - centre) / 2`
   (8-connectivity), whose ridges run along the edges between touching nuclei;
4. foreground blobs that hold no seed become objects of their own; objects under 16 px are
   dropped; ids are renumbered 1..N.

`sa2net segment IMAGE --model THIS.zip` (or the napari plugin's model picker) loads this package
and runs exactly these steps, tiled, with one normalization per image.
"""

BINARY = """\
## From probabilities to objects

The output is one foreground probability map; napari-sa2net labels the 8-connected components
of `p(foreground) > 0.5` and drops those under 16 px.
"""


def model_card(facts: PackageFacts) -> str:
    """README.md text of a package from the export's ``facts`` (see ``export.job``)."""
    meta = facts.metadata
    sections = [
        f"# {facts.name}\n\n{facts.description}\n",
        _io_section(facts),
        _normalization_section(facts),
        _instances_section(facts),
        _training_section(meta, facts),
        _validation_section(meta, facts),
        "## Citation\n\nThe method: " + CITATION + ".\n",
        _license_section(facts),
    ]
    card = bundled_card(facts.origin)
    if card:
        sections.append(card)
    return "\n".join(sections)


def _instances_section(facts: PackageFacts) -> str:
    if facts.mode != "instance":
        return BINARY
    return CENTRE if "centre" in facts.class_names else INSTANCES


def _io_section(facts: PackageFacts) -> str:
    diameter = facts.metadata.get("object_diameter_px")
    size = (
        f"Trained on objects of median diameter {diameter} px: resample images whose nuclei are "
        "much smaller or larger (napari-sa2net: `diameter=`) before applying the model.\n"
        if diameter
        else ""
    )
    classes = ", ".join(facts.class_names)
    return (
        "## Input and output\n\n"
        f"- input `input`: batch × {facts.in_channels} channel(s) × y × x, float32 raw "
        "intensities (cast uint8 / uint16 images to float); y and x multiples of 16, at least "
        f"{facts.min_size} px.\n"
        f"- output `probabilities`: batch × {len(facts.class_names)} × y × x, float32 in "
        f"[0, 1] ({classes}); the activations are inside the weights, no postprocessing is "
        "needed.\n"
        f"- halo: {facts.halo} px per side, the model's measured reach (99.9 % of an output "
        "pixel's input gradient lies within it); a tiled consumer should discard that border of "
        "each tile.\n\n" + size
    )


def _normalization_section(facts: PackageFacts) -> str:
    norm = facts.normalization
    low, high = norm["low_percentile"], norm["high_percentile"]
    fixed = facts.fixed
    common = (
        "## Normalization\n\n"
        f"The model was trained on images normalized per channel from their own percentiles, "
        f"{low} → 0 and {high} → 1, not clipped, computed once over the whole image "
        "(napari-sa2net never normalizes a tile on its own: per-tile statistics make seams "
        "and blow up the noise of empty tiles).\n\n"
    )
    if fixed is None:
        return common + (
            f"This package says so with the spec's per-sample `scale_range` (axes y, x; "
            f"percentiles {low} / {high}). bioimageio.core computes such sample statistics on "
            "the whole image before it splits it into blocks, so its tiled prediction has no "
            "seams. A consumer that normalizes each tile separately should use a package "
            "exported with `sa2net export ... --fixed-normalization IMAGE`, which stores an "
            "image's whole-image percentiles as a fixed `scale_linear`.\n"
        )
    return common + (
        f"This package stores fixed values instead (`scale_linear`, gain "
        f"{_values(fixed.gain)}, offset {_values(fixed.offset)}): the {low} / {high} "
        f"percentiles of the whole image `{fixed.image}` ({_values(fixed.low)} / "
        f"{_values(fixed.high)}), so every tile of every image gets the same mapping and "
        "tiled consumers show no seams. The values are right for images acquired like that "
        "one (same bit depth, exposure and stain); for others export again from one of them, "
        "or use the per-sample package.\n"
    )


def _values(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:.6g}" for v in values)


def _training_section(meta: Mapping[str, Any], facts: PackageFacts) -> str:
    lines = ["## Training\n"]
    training = meta.get("training") or {}
    if training:
        lines.append(
            f"- trained by `sa2net train` ({training.get('mode', '?')} mode) on "
            f"{len(training.get('train_names', []))} image(s) of `{training.get('images')}`, "
            f"validated on {len(training.get('val_names', []))}; {training.get('epochs_done')} "
            f"epochs, best epoch {training.get('best_epoch')}, {training.get('seconds')} s on "
            f"{training.get('device')}."
        )
        recipe = training.get("recipe")
        if recipe:
            lines.append(f"- recipe: `{json.dumps(recipe, sort_keys=True)}`")
    finetune = meta.get("finetune")
    if finetune:
        lines.append(
            f"- finetuned in napari-sa2net on painted regions: {len(finetune['train_regions'])} "
            f"training / {len(finetune['val_regions'])} held-out region(s), lr {finetune['lr']}, "
            f"encoder frozen: {finetune['freeze_encoder']}, best epoch {finetune['epoch']}."
        )
    parent = meta.get("parent")
    if parent:
        lines.append(
            f"- parent model: `{parent.get('name')}` (sha256 `{parent.get('sha256')}`); the "
            f"package's `parent.id` ({facts.parent_id}) names it as napari-sa2net knows it, "
            "not as a bioimage.io collection entry unless it came from one."
        )
    if len(lines) == 1:
        lines.append("- no training record is stored with these weights.")
    return "\n".join(lines) + "\n"


def _validation_section(meta: Mapping[str, Any], facts: PackageFacts) -> str:
    rows = []
    for key in ("training", "finetune"):
        metrics = (meta.get(key) or {}).get("metrics") or {}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()) if k != "lr")
        if shown:
            rows.append(f"- {key} (held-out data of that run): {shown}")
    rows = rows or ["- no validation figures are stored with these weights."]
    return (
        "## Validation\n\n"
        + "\n".join(rows)
        + "\n\n"
        + f"The test tensors are a {facts.test_size}² crop of `{facts.test_image}`; "
        f"napari-sa2net finds {facts.test_objects} object(s) in them (the cover shows them). "
        "`bioimageio test THIS.zip` re-runs both weight formats on them.\n"
    )


def _license_section(facts: PackageFacts) -> str:
    test_notice = Path(facts.test_image).with_suffix(".txt").name
    data = [f"`{p.name}`" for p in facts.notices if p.name != test_notice]
    weights = (
        f"The weights derive from data under the notice(s) attached: {', '.join(data)}."
        if data
        else "The weights were trained on the exporter's own images: attach their license "
        "and notices before sharing this package."
    )
    sample = (
        f" The test image's notice is `{test_notice}`."
        if any(p.name == test_notice for p in facts.notices)
        else ""
    )
    return (
        "## License\n\nThe package (napari-sa2net code and these weights) is MIT licensed. "
        f"{weights}{sample}\n"
    )


def bundled_card(name: str | None) -> str:
    """The bundled model card of ``name`` with its headings one level down, or ``""``."""
    path = BUNDLED_DIR / "README.md"
    if not name or not path.is_file() or f"`{name}`" not in path.read_text(encoding="utf-8"):
        return ""
    text = path.read_text(encoding="utf-8")
    return "\n".join("#" + line if line.startswith("#") else line for line in text.splitlines())


def cover_image(image: np.ndarray, labels: np.ndarray, width: int = 512) -> np.ndarray:
    """A 2:1 RGB uint8 cover about ``width`` px wide: the image, then its labels drawn over it.

    ``image`` is ``YXC`` normalized (about 0..1), ``labels`` ``YX`` instance ids.
    """
    grey = np.clip(image.mean(axis=-1), 0.0, 1.0)
    base = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=-1)
    rng = np.random.default_rng(0)
    palette = rng.integers(64, 256, size=(int(labels.max(initial=0)) + 1, 3), dtype=np.uint8)
    overlay = base.copy()
    inside = labels > 0
    overlay[inside] = (0.5 * base[inside] + 0.5 * palette[labels[inside]]).astype(np.uint8)
    edges = inside & ((labels != np.roll(labels, 1, 0)) | (labels != np.roll(labels, 1, 1)))
    overlay[edges] = 255
    cover = np.concatenate([base, overlay], axis=1)
    scale = max(1, width // cover.shape[1])
    return np.repeat(np.repeat(cover, scale, axis=0), scale, axis=1)
