"""Whole-image prediction in memory and the metric set used for validation and evaluation.

This is the simple path for images that fit in memory (validation images, ``sa2net evaluate``);
large slides go through the tiled pipeline in ``napari_sa2net.inference``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch

from ..inference.postprocess import DEFAULT_MIN_SIZE, probabilities_to_instances
from ..model.sa2net import to_probabilities
from .metrics import (
    aggregated_jaccard_index,
    instance_f1,
    match_instances,
    overlaps,
    pixel_dice,
    pixel_iou,
)


def autocast(device: torch.device, enabled: bool = True):
    """Mixed precision on CUDA (bfloat16 where supported, else float16); a no-op elsewhere."""
    if not enabled or device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def mode_of(model: torch.nn.Module) -> str:
    """``"binary"`` for a 1-class model, ``"instance"`` for a 3-class one."""
    return "binary" if model.num_classes == 1 else "instance"


@torch.no_grad()
def predict_probabilities(
    model: torch.nn.Module, image: np.ndarray, device: torch.device, amp: bool = True
) -> np.ndarray:
    """Probabilities ``K×H×W`` (float32) of one normalized ``YXC`` image, in one forward pass.

    Sigmoid for a 1-class model, softmax over classes otherwise (and a sigmoid for a centre
    map, :meth:`~napari_sa2net.model.SA2Net.probabilities`). The model is put in eval mode
    for the pass and restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0), np.float32))
        with autocast(device, amp):
            logits = model(x[None].to(device))
        logits = logits.float()
        probs = to_probabilities(logits, getattr(model, "centre", False))
        return probs[0].cpu().contiguous().numpy()  # NCHW whatever the weights' layout
    finally:
        model.train(was_training)


def score_labels(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Pixel Dice and IoU, instance F1 at IoU 0.5 and 0.75, and AJI of one label image pair."""
    table = overlaps(gt, pred)
    return {
        "dice": pixel_dice(gt, pred),
        "iou": pixel_iou(gt, pred),
        "f1_50": match_instances(gt, pred, 0.5, table).f1,
        "f1_75": match_instances(gt, pred, 0.75, table).f1,
        "aji": aggregated_jaccard_index(gt, pred),
    }


def validate(
    model: torch.nn.Module,
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    device: torch.device,
    *,
    amp: bool = True,
    min_size: int = DEFAULT_MIN_SIZE,
) -> dict[str, float]:
    """Mean ``val_dice`` (foreground) and ``val_f1`` (instances at IoU 0.5) over images.

    ``images`` are normalized ``YXC`` arrays, ``labels`` the ``YX`` ground-truth instances.
    """
    dice, f1 = [], []
    mode = mode_of(model)
    for image, gt in zip(images, labels):
        probs = predict_probabilities(model, image, device, amp)
        pred = probabilities_to_instances(probs, mode, min_size=min_size)
        dice.append(pixel_dice(gt, pred))
        f1.append(instance_f1(gt, pred, 0.5).f1)
    return {"val_dice": float(np.mean(dice)), "val_f1": float(np.mean(f1))}
