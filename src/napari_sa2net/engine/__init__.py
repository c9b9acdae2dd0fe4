"""Training engine: data sampling, losses, metrics, training and finetuning jobs.

Names are re-exported lazily, so ``import napari_sa2net.engine`` loads neither torch nor scipy;
the defining submodule is imported on first use of a name.
"""

from __future__ import annotations

from .._lazy import lazy_exports

#: Public name -> submodule that defines it.
_EXPORTS: dict[str, str] = {
    "pixel_dice": "metrics",
    "pixel_iou": "metrics",
    "match_instances": "metrics",
    "instance_f1": "metrics",
    "aggregated_jaccard_index": "metrics",
    "InstanceScores": "metrics",
    "SegmentationLoss": "losses",
    "labels_to_classes": "data",
    "CropSampler": "data",
    "TrainConfig": "train",
    "TrainResult": "train",
    "train_job": "train",
    "finetune_job": "finetune",
    "FinetuneProgress": "finetune",
    "FinetuneResult": "finetune",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
