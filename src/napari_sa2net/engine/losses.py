"""Segmentation losses on logits, with an ignore mask and deep supervision.

Functional core, thin ``nn.Module`` wrappers. Targets are integer maps ``B×H×W``: class ids
(binary: 0 / 1; instance: 0 background, 1 interior, 2 boundary) and :data:`IGNORE` (255) for
pixels that contribute nothing (crop padding, pixels outside finetuning regions). Every loss also
accepts an explicit boolean ``valid`` mask ``B×H×W``, combined with the ignore value.

Recipes (SA2-Net paper, with the with-logits forms that make AMP safe):

- binary: ``0.5 · soft Dice + 0.5 · class-balanced BCE`` (per head),
- instance (3 classes): ``0.5 · cross-entropy + 0.5 · multiclass soft Dice`` (per head),
- deep supervision: the same loss on the main and the three auxiliary heads, summed.

Centre map (``SegmentationLoss(centre=True)``, models with a centre plane): targets are
``B×H×W×2``, the class ids and the centre map as ``round(v · 250)`` (:data:`IGNORE` where
ignored); the last output plane adds a binary cross-entropy with those soft targets (per head,
weight 1) to the 3-class loss of the other planes.

Touching nuclei: ``SegmentationLoss(contact_weight=w)`` weighs the cross-entropy of *contact*
pixels ``w`` times (:func:`contact_mask`: boundary pixels with no background near them, i.e. the
boundary drawn where two objects meet), the thin line whose misses merge two nuclei into one
(the weight maps of Ronneberger et al., MICCAI 2015, in the 3-class form).

Deviation: the Dice terms use a smoothing constant of 1 (the reference uses 1e-5), so a crop
without foreground does not produce a near-infinite gradient on its few false positives.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IGNORE = 255
BACKGROUND, BOUNDARY = 0, 2
#: Scale of the centre map in targets (``engine.targets.CENTRE_SCALE``).
CENTRE_SCALE = 250


def _valid_mask(target: Tensor, valid: Tensor | None) -> Tensor:
    mask = target != IGNORE
    return mask if valid is None else mask & valid.bool()


def soft_dice_binary(
    logits: Tensor, target: Tensor, valid: Tensor | None = None, smooth: float = 1.0
) -> Tensor:
    """Per-sample squared-denominator soft Dice, ``1 - (2Σpt + s) / (Σp² + Σt² + s)``, averaged.

    ``logits`` is ``B×1×H×W``; ``target`` ``B×H×W`` with values 0, 1 or :data:`IGNORE`.
    """
    mask = _valid_mask(target, valid).float()
    p = torch.sigmoid(logits[:, 0].float()) * mask
    t = (target == 1).float() * mask
    dims = (1, 2)
    inter = (p * t).sum(dims)
    denom = (p * p).sum(dims) + (t * t).sum(dims)
    return (1.0 - (2.0 * inter + smooth) / (denom + smooth)).mean()


def balanced_bce_with_logits(
    logits: Tensor, target: Tensor, valid: Tensor | None = None
) -> Tensor:
    """Class-balanced BCE over the batch: ``0.5·mean_pos(BCE) + 0.5·mean_neg(BCE)``.

    A class absent from the (valid pixels of the) batch contributes 0.
    """
    mask = _valid_mask(target, valid)
    t = (target == 1).float()
    bce = F.binary_cross_entropy_with_logits(logits[:, 0].float(), t, reduction="none")
    pos, neg = mask & (target == 1), mask & (target == 0)
    pos_term = (bce * pos).sum() / pos.sum().clamp(min=1)
    neg_term = (bce * neg).sum() / neg.sum().clamp(min=1)
    return 0.5 * pos_term + 0.5 * neg_term


def soft_dice_multiclass(
    logits: Tensor, target: Tensor, valid: Tensor | None = None, smooth: float = 1.0
) -> Tensor:
    """``1 - mean_k (2Σ p_k t_k + s) / (Σ p_k + Σ t_k + s)`` with sums over batch and pixels.

    ``logits`` is ``B×K×H×W`` (softmax over K), ``target`` ``B×H×W`` class ids or IGNORE.
    """
    num_classes = logits.shape[1]
    mask = _valid_mask(target, valid)
    probs = torch.softmax(logits.float(), dim=1) * mask[:, None]
    safe = torch.where(mask, target, torch.zeros_like(target)).long()
    onehot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).float() * mask[:, None]
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    return (1.0 - (2.0 * inter + smooth) / (denom + smooth)).mean()


def contact_mask(target: Tensor, radius: int = 1) -> Tensor:
    """Boundary pixels of ``B×H×W`` class targets with no background within ``radius`` px.

    These are the boundaries between two touching objects (an outer contour always has
    background next to it); use the targets' boundary width as ``radius``.
    """
    background = (target == BACKGROUND).float()[:, None]
    near = F.max_pool2d(background, 2 * radius + 1, stride=1, padding=radius)[:, 0] > 0
    return (target == BOUNDARY) & ~near


def cross_entropy(
    logits: Tensor, target: Tensor, valid: Tensor | None = None, weight: Tensor | None = None
) -> Tensor:
    """Mean cross-entropy over valid pixels (0 when none is valid), weighted by ``weight``.

    ``weight`` is an optional ``B×H×W`` map of per-pixel weights (the mean is weighted).
    """
    mask = _valid_mask(target, valid).float()
    if weight is not None:
        mask = mask * weight
    safe = torch.where(target != IGNORE, target, torch.zeros_like(target)).long()
    ce = F.cross_entropy(logits.float(), safe, reduction="none")
    return (ce * mask).sum() / mask.sum().clamp(min=1)


def binary_loss(logits: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """Paper recipe for one foreground class: ``0.5·Dice + 0.5·class-balanced BCE``."""
    return 0.5 * soft_dice_binary(logits, target, valid) + 0.5 * balanced_bce_with_logits(
        logits, target, valid
    )


def instance_loss(
    logits: Tensor, target: Tensor, valid: Tensor | None = None, weight: Tensor | None = None
) -> Tensor:
    """3-class recipe: ``0.5·cross-entropy`` (``weight``-ed) ``+ 0.5·multiclass soft Dice``."""
    return 0.5 * cross_entropy(logits, target, valid, weight) + 0.5 * soft_dice_multiclass(
        logits, target, valid
    )


def centre_loss(logit: Tensor, code: Tensor, valid: Tensor | None = None) -> Tensor:
    """Binary cross-entropy of a ``B×H×W`` centre logit against ``round(v · 250)`` targets.

    Mean over the pixels whose code is not :data:`IGNORE` (and ``valid``); 0 when none is.
    """
    mask = _valid_mask(code, valid).float()
    target = code.float().clamp(max=CENTRE_SCALE) / CENTRE_SCALE
    bce = F.binary_cross_entropy_with_logits(logit.float(), target, reduction="none")
    return (bce * mask).sum() / mask.sum().clamp(min=1)


def deep_supervision(
    loss_fn, outputs: Tensor | Sequence[Tensor], target: Tensor, valid: Tensor | None = None
) -> Tensor:
    """Sum of ``loss_fn`` over the main and auxiliary heads (weight 1 each)."""
    if isinstance(outputs, Tensor):
        outputs = (outputs,)
    return sum(loss_fn(out, target, valid) for out in outputs)


class SegmentationLoss(nn.Module):
    """Recipe loss of a mode (``"binary"`` or ``"instance"``), summed over deep-supervision heads.

    ``forward(outputs, target, valid=None)`` takes one logits tensor or the tuple of the main and
    auxiliary logits (``model(x, aux=True)``). Instance mode: ``contact_weight`` > 1 weighs the
    cross-entropy of :func:`contact_mask` pixels (found within ``contact_radius``) that much more;
    ``centre`` adds :func:`centre_loss` on the last plane (targets ``B×H×W×2``, see the module).
    """

    def __init__(
        self,
        mode: str = "instance",
        contact_weight: float = 1.0,
        contact_radius: int = 1,
        centre: bool = False,
    ) -> None:
        super().__init__()
        if mode not in ("binary", "instance"):
            raise ValueError(f"mode must be 'binary' or 'instance', got {mode!r}")
        if not contact_weight >= 1.0:
            raise ValueError(f"contact_weight must be at least 1 (1 = off), got {contact_weight}")
        if centre and mode != "instance":
            raise ValueError("a centre map needs mode='instance'")
        self.mode = mode
        self.fn = binary_loss if mode == "binary" else instance_loss
        self.contact_weight, self.contact_radius = float(contact_weight), int(contact_radius)
        self.centre = bool(centre)

    def forward(
        self, outputs: Tensor | Sequence[Tensor], target: Tensor, valid: Tensor | None = None
    ) -> Tensor:
        if isinstance(outputs, Tensor):
            outputs = (outputs,)
        code = None
        if self.centre:
            if target.ndim != 4:
                raise ValueError(
                    f"a centre-map loss needs B×H×W×2 targets (classes, centre), got shape "
                    f"{tuple(target.shape)}; build them with make_target(..., centre=True)"
                )
            target, code = target[..., 0], target[..., 1]
        weight = None
        if self.mode == "instance" and self.contact_weight != 1.0:
            contact = contact_mask(target, self.contact_radius).float()
            weight = 1.0 + (self.contact_weight - 1.0) * contact
        total = 0.0
        for out in outputs:
            classes = out[:, :-1] if self.centre else out
            if self.mode == "binary":
                total = total + binary_loss(classes, target, valid)
            else:
                total = total + instance_loss(classes, target, valid, weight)
            if code is not None:
                total = total + centre_loss(out[:, -1], code, valid)
        return total
