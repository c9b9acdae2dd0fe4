"""The settings of a training run (:class:`TrainConfig`), validated once at the boundary.

Messages name the setting as the Python API spells it and, where ``sa2net train`` has one, the
command-line flag (``batch_size (--batch-size)``), so either kind of user knows what to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .augment import PRESETS
from .state import last_path

#: ``sa2net train`` flags of the settings that have one (the others are Python-only).
CLI_FLAGS = {
    "images": "--images",
    "labels": "--labels",
    "val_images": "--val-images",
    "val_labels": "--val-labels",
    "out": "--out",
    "config": "--config",
    "mode": "--mode",
    "epochs": "--epochs",
    "time_budget_minutes": "--time-budget",
    "steps_per_epoch": "--steps-per-epoch",
    "batch_size": "--batch-size",
    "crop": "--crop",
    "lr": "--lr",
    "seed": "--seed",
    "device": "--device",
    "resume": "--resume",
    "overwrite": "--overwrite",
    "val_every": "--val-every",
    "scale_jitter": "--scale-jitter",
    "boundary_width": "--boundary-width",
    "augment": "--augment",
    "centre": "--centre-map",
}

#: ``boundary_width=None``: the training objects' median diameter divided by this, rounded.
BOUNDARY_DIAMETER_RATIO = 9.0
#: Bounds of the automatic boundary width (pixels).
BOUNDARY_WIDTH_RANGE = (1, 5)


def auto_boundary_width(diameter: float) -> int:
    """Boundary width (pixels) for objects of median ``diameter``: about a ninth of it, 1-5 px.

    In the bundled model's cross-validation (27-px nuclei, model card) 1-px boundaries scored
    F1 0.868 against 0.910 for 2 px, and 3 px split touching nuclei best (crowded F1 0.914 vs
    0.886): a boundary a ninth of the nucleus keeps a gap between touching ones that a 1-px
    line, easily missed, does not.
    Small objects keep 1 px (their interior would vanish), large ones stop at 5.
    """
    low, high = BOUNDARY_WIDTH_RANGE
    return int(min(high, max(low, round(float(diameter) / BOUNDARY_DIAMETER_RATIO))))


def training_targets(model: Any) -> tuple[int, float]:
    """Boundary width and contact weight of the model's training recipe (1 and 1 unrecorded).

    Finetuning keeps the targets the model learned: a model trained with 2-px boundaries fed
    1-px ones would be taught to draw thinner boundaries and merge touching nuclei again.
    """
    recipe = (model.metadata.get("training") or {}).get("recipe") or {}
    return int(recipe.get("boundary_width", 1)), float(recipe.get("contact_weight", 1.0))


def named(setting: str) -> str:
    """``"batch_size (--batch-size)"``, or the bare name of a setting without a flag."""
    flag = CLI_FLAGS.get(setting)
    return f"{setting} ({flag})" if flag else setting


@dataclass
class TrainConfig:
    """Everything a training run needs; validated by :meth:`check`.

    ``epochs`` is the total epoch count (a resumed run continues up to it); with only
    ``time_budget_minutes`` the run stops after the epoch that crosses the budget.
    ``steps_per_epoch=None``: one epoch sees about as many pixels as the training set holds.
    ``scale_jitter=s`` samples a quarter of the crops (``augment="wide"``: half) at a random
    zoom in ``[1/(1+s), 1+s]``. ``augment``: ``"basic"`` geometry and mild intensity jitter,
    ``"noise"`` also shot and read noise on some crops, ``"photometric"`` also noise or an
    uneven background on some crops, ``"focus"`` also a blur on a quarter of the crops,
    ``"medium"`` also blur, saturation, uneven background,
    noise and few grey levels on a few crops, ``"wide"`` on most (``engine.augment``).
    ``boundary_width``: pixels of the boundary class inside each object (instance mode);
    ``None`` (the default) sets it from the training objects' median diameter
    (:func:`auto_boundary_width`: 3 px for 27-px nuclei), and the checkpoint's recipe records
    the width used (a resumed run keeps its checkpoint's). Touching nuclei: ``contact_weight``
    weighs the loss of the boundary between two touching objects (1 = off); ``contact_bias``
    centres that fraction of the crops where objects touch. ``centre`` (instance mode) gives
    the model a centre-map output (:class:`~napari_sa2net.model.SA2Net`) from which inference
    seeds one object per nucleus.
    """

    images: Path
    labels: Path
    out: Path
    val_images: Path | None = None
    val_labels: Path | None = None
    config: str = "sa2net-small"
    mode: str = "instance"
    epochs: int | None = None
    time_budget_minutes: float | None = None
    steps_per_epoch: int | None = None
    batch_size: int = 8
    crop: int = 256
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    restart_epochs: int = 10
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    resume: Path | None = None
    overwrite: bool = False
    val_every: int = 1
    val_fraction: float = 0.1
    boundary_width: int | None = None
    scale_jitter: float = 0.0
    augment: str = "basic"
    contact_weight: float = 1.0
    contact_bias: float = 0.0
    centre: bool = False

    def check(self) -> None:
        """Raise ``ValueError`` naming the first bad setting and how to fix it."""
        if self.mode not in ("binary", "instance"):
            raise ValueError(f"{named('mode')} must be 'binary' or 'instance', got {self.mode!r}")
        for name in ("batch_size", "val_every", "restart_epochs", "boundary_width"):
            if name == "boundary_width" and self.boundary_width is None:
                continue  # resolved from the training objects' size
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{named(name)} must be at least 1, got {getattr(self, name)}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"{named('epochs')} must be at least 1, got {self.epochs}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(
                f"{named('steps_per_epoch')} must be at least 1, got {self.steps_per_epoch}"
            )
        if self.time_budget_minutes is not None and self.time_budget_minutes <= 0:
            raise ValueError(
                f"{named('time_budget_minutes')} must be positive, got {self.time_budget_minutes}"
            )
        if self.crop < 32:
            raise ValueError(f"{named('crop')} must be at least 32 pixels, got {self.crop}")
        if not self.lr > 0:
            raise ValueError(f"{named('lr')} must be positive, got {self.lr}")
        if (self.val_images is None) != (self.val_labels is None):
            raise ValueError(
                f"give both {named('val_images')} and {named('val_labels')}, or neither"
            )
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0 <= self.scale_jitter < 1:
            raise ValueError(f"{named('scale_jitter')} must be in [0, 1), got {self.scale_jitter}")
        if self.augment not in PRESETS:
            raise ValueError(
                f"{named('augment')} must be one of {', '.join(PRESETS)}, got {self.augment!r}"
            )
        if not self.contact_weight >= 1:
            raise ValueError(
                f"contact_weight must be at least 1 (1 = off), got {self.contact_weight}"
            )
        if not 0 <= self.contact_bias < 1:
            raise ValueError(f"contact_bias must be in [0, 1), got {self.contact_bias}")
        out = Path(self.out)
        if out.suffix != ".pt":
            raise ValueError(f"{named('out')} must be a .pt file, got {str(out)!r}")
        for path in (out, last_path(out)):
            if path.exists() and not (self.overwrite or self.resume):
                raise FileExistsError(
                    f"{path} exists; pass overwrite=True (--overwrite), resume from "
                    f"{last_path(out).name} (--resume), or choose another --out"
                )
