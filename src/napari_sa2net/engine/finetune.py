"""Finetune a model on one image with sparse annotations painted in rectangular regions.

Inside a region every pixel counts (unpainted = background); outside all regions the loss ignores
the pixels. Without regions, the bounding boxes of the painted objects grown by ``margin`` are the
regions. A fraction of the regions (at least one) is held out for validation; with a single
region its bottom ``val_fraction`` of rows is held out instead. The held-out pixels never enter
the training loss.

Epoch events are :class:`FinetuneProgress`: ``Progress`` plus an optional ``preview`` (the
probability map of the first held-out region) so a widget can show how the model changes.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._progress import Job, Progress
from ..io.atomic import remove_stale_partials
from ..memory import freed_memory_kept
from .data import CropSampler
from .evaluation import mode_of, predict_probabilities
from .losses import SegmentationLoss
from .precision import MixedPrecision
from .regions import Region, mask_of, plan_regions, with_context
from .targets import IGNORE, make_target, split_disconnected
from .train_config import training_targets


@dataclass(frozen=True)
class FinetuneProgress(Progress):
    """An epoch event of a finetuning job.

    ``preview`` is ``K×h×w`` float32 probabilities of ``preview_region`` (``(y0, x0, y1, x1)`` in
    image pixels), or ``None`` on epochs without a preview.
    """

    preview: np.ndarray | None = field(default=None, compare=False, repr=False)
    preview_region: Region | None = None


@dataclass
class FinetuneResult:
    """The finetuned model (best weights loaded), where it was saved, and the record."""

    model: torch.nn.Module
    best_epoch: int
    best_metrics: dict[str, float]
    epochs_done: int
    out: Path | None
    train_regions: list[Region]
    val_regions: list[Region]
    history: list[dict[str, float]] = field(default_factory=list)


def _as_yxc(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image, labels = np.asarray(image), np.asarray(labels)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or labels.ndim != 2 or image.shape[:2] != labels.shape:
        raise ValueError(
            f"finetuning needs a YX or YXC image and YX labels of the same height and width, "
            f"got image {image.shape} and labels {labels.shape}"
        )
    if labels.dtype.kind not in "iub" or (labels.dtype.kind == "i" and labels.min() < 0):
        raise ValueError(f"labels must be non-negative integer ids, got dtype {labels.dtype}")
    return image, labels


@dataclass
class FinetuneSettings:
    """Knobs of :func:`finetune_job` (see there)."""

    val_fraction: float = 0.2
    epochs: int | None = 30
    time_budget_minutes: float | None = None
    steps_per_epoch: int = 10
    batch_size: int = 4
    crop: int = 128
    lr: float = 1e-4
    freeze_encoder: bool = True
    margin: int = 16
    preview_every: int = 1
    seed: int = 0
    device: str | torch.device | None = None
    amp: bool = True
    out: Path | None = None

    def check(self) -> None:
        if self.epochs is None and self.time_budget_minutes is None:
            raise ValueError("give epochs or time_budget_minutes (or both)")
        for name in ("steps_per_epoch", "batch_size", "preview_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.out is not None and Path(self.out).suffix != ".pt":
            raise ValueError(f"out must be a .pt file, got {str(self.out)!r}")


class _Finetuner:
    """State of one finetuning run (keeps the generator short)."""

    def __init__(self, model, image, labels, regions, opts: FinetuneSettings) -> None:
        from ..model import resolve_device, use_fast_layout

        opts.check()
        image, labels = _as_yxc(image, labels)
        if image.shape[-1] != model.in_channels:
            raise ValueError(
                f"the image has {image.shape[-1]} channel(s) but the model takes "
                f"{model.in_channels}: pick the matching channel(s)"
            )
        shape = labels.shape
        self.train_regions, self.val_regions = plan_regions(
            labels, regions, opts.val_fraction, opts.seed, opts.margin
        )
        if opts.out is not None:  # partial checkpoints of a crashed earlier run
            remove_stale_partials(Path(opts.out).parent)
        self.opts = opts
        self.device = (
            resolve_device(opts.device)
            if opts.device is not None
            else next(model.parameters()).device
        )
        torch.manual_seed(opts.seed)
        self.model = use_fast_layout(copy.deepcopy(model).to(self.device), self.device)
        self.model.freeze_encoder(opts.freeze_encoder)
        self.mode = mode_of(self.model)
        norm = self.model.normalization(image)
        width, contact = training_targets(self.model)
        target = make_target(labels, self.mode, width, self.model.centre)
        keep = mask_of(self.train_regions, shape) & ~mask_of(self.val_regions, shape)
        target[~keep] = IGNORE
        self.sampler = CropSampler([norm], [target], opts.crop, seed=opts.seed)
        self.val = [with_context(r, shape) for r in self.val_regions]
        self.norm, self.labels = norm, labels
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=opts.lr)
        self.amp = MixedPrecision(self.device, opts.amp)
        self.loss_fn = SegmentationLoss(self.mode, contact, width, centre=self.model.centre)
        self.best_epoch, self.best_score, self.best_metrics = 0, -np.inf, {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, float]] = []
        self.parent = parent_record(model)

    def step(self) -> float:
        x, y = self.sampler.batch(self.opts.batch_size)
        x, y = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with self.amp.autocast():
            outputs = self.model(x, aux=True)
        loss = self.loss_fn(outputs, y)
        self.amp.step(loss, self.optimizer)
        return float(loss.detach())

    def validate(self) -> tuple[dict[str, float], np.ndarray | None]:
        """Scores inside the held-out regions, and the first region's probabilities."""
        scores, probs = [], []
        for (gy0, gx0, gy1, gx1), (y0, x0, y1, x1) in self.val:
            image = self.norm[gy0:gy1, gx0:gx1]
            # an id painted on two nuclei (napari's brush keeps its id) scores as two objects
            gt = split_disconnected(self.labels[gy0:gy1, gx0:gx1][y0:y1, x0:x1])[0]
            p = predict_probabilities(self.model, image, self.device)[:, y0:y1, x0:x1]
            scores.append(validate_probs(p, gt, self.mode))
            probs.append(p)
        if not scores:
            return {}, None
        return {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}, probs[0]

    def end_epoch(self, epoch: int, loss: float, started: float) -> tuple[dict, np.ndarray | None]:
        metrics, preview = self.validate()
        metrics = {"loss": loss, **metrics}
        self.history.append({"epoch": epoch, **metrics})
        if metrics:
            key = "val_f1" if self.mode == "instance" else "val_dice"
            score = metrics.get(key, -loss)  # without validation: the lowest training loss
            if score >= self.best_score:
                self.best_score, self.best_epoch, self.best_metrics = score, epoch, metrics
                self.best_state = {
                    k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
                }
                self._save(epoch, metrics, started)
        self.model.train()
        return metrics, preview

    def _save(self, epoch: int, metrics: dict[str, float], started: float) -> None:
        if self.opts.out is None:
            return
        from ..model import save_checkpoint

        # The base's package record becomes part of ``parent``: this checkpoint is no package.
        inherited = {k: v for k, v in self.model.metadata.items() if k != "bioimageio"}
        self.model.metadata = {
            **inherited,
            "parent": self.parent,
            "finetune": {
                "epoch": epoch,
                "metrics": metrics,
                "train_regions": self.train_regions,
                "val_regions": self.val_regions,
                "lr": self.opts.lr,
                "freeze_encoder": self.opts.freeze_encoder,
                "seconds": round(time.monotonic() - started, 1),
            },
        }
        save_checkpoint(self.model, self.opts.out)


def parent_record(model: torch.nn.Module) -> dict:
    """The model a finetuning starts from, for the new checkpoint's ``metadata["parent"]``.

    ``{"name", "path", "sha256", "bundled", "bioimageio"}``: the bundled model name or the
    checkpoint / package file name, the file and its full SHA-256 (``None`` for a model that
    was never saved), whether it is a bundled model, and its bioimage.io record when it was
    loaded from a package. ``sa2net export`` turns it into the package's ``parent``.
    """
    from ..model import BUNDLED_DIR, model_hash

    path = getattr(model, "checkpoint_path", None)
    record = {
        "name": str(model.metadata.get("name") or model.config.name),
        "path": None,
        "sha256": None,
        "bundled": False,
        "bioimageio": model.metadata.get("bioimageio"),
    }
    if path is not None and Path(path).is_file():
        path = Path(path)
        bundled = path.resolve().parent == BUNDLED_DIR
        record.update(
            name=path.stem if bundled else path.name,
            path=str(path),
            sha256=model_hash(path, length=64),
            bundled=bundled,
        )
    return record


def validate_probs(probs: np.ndarray, gt: np.ndarray, mode: str) -> dict[str, float]:
    """``val_dice`` and ``val_f1`` of one ``K×h×w`` probability map against labels."""
    from ..inference.postprocess import probabilities_to_instances
    from .metrics import instance_f1, pixel_dice

    pred = probabilities_to_instances(probs, mode)
    return {"val_dice": pixel_dice(gt, pred), "val_f1": instance_f1(gt, pred, 0.5).f1}


def finetune_job(
    model: torch.nn.Module,
    image: np.ndarray,
    labels: np.ndarray,
    regions: Sequence[Sequence[int]] | None = None,
    **options,
) -> Job[FinetuneResult]:
    """Finetune a copy of ``model`` on painted ``labels`` of one ``image``.

    Parameters
    ----------
    model : SA2Net
        The model to start from; it is copied, never changed.
    image : np.ndarray
        ``YX`` or ``YXC`` image (raw intensities; the model's normalization is applied).
    labels : np.ndarray
        ``YX`` painted instance ids, 0 = background / unpainted.
    regions : sequence of (y0, x0, y1, x1), optional
        Annotated rectangles (end exclusive). ``None``: the painted objects' boxes + margin.
    **options
        Fields of :class:`FinetuneSettings`: ``val_fraction`` (0.2), ``epochs`` (30),
        ``time_budget_minutes``, ``steps_per_epoch`` (10), ``batch_size`` (4), ``crop`` (128),
        ``lr`` (1e-4), ``freeze_encoder`` (True), ``margin`` (16), ``preview_every`` (1),
        ``seed``, ``device`` (default: the model's), ``amp`` (True: mixed precision on CUDA,
        with loss scaling where it is float16, as training), ``out`` (``.pt`` path for the best
        checkpoint, written atomically whenever the validation score improves).

    Yields
    ------
    Progress
        ``"batch"`` events (level 1, ``metrics={"loss"}``) and :class:`FinetuneProgress`
        ``"epoch"`` events (level 0, loss and ``val_dice`` / ``val_f1``, optional preview).
    """
    run = _Finetuner(model, image, labels, regions, FinetuneSettings(**options))
    opts = run.opts
    budget = opts.time_budget_minutes * 60 if opts.time_budget_minutes else None
    started = time.monotonic()
    yield FinetuneProgress(
        "epoch", 0, opts.epochs, 0,
        f"finetuning on {run.device}: {len(run.train_regions)} training / "
        f"{len(run.val_regions)} held-out region(s)",
    )  # fmt: skip
    epoch = 0
    run.model.train()
    # Freed activations kept for the next step (napari runs this in a worker thread: 7,500 page
    # faults a step of 4 × 128² without it, 0.87 x the step time with it); handed back at the end.
    with freed_memory_kept():
        while opts.epochs is None or epoch < opts.epochs:
            losses = []
            for step in range(1, opts.steps_per_epoch + 1):
                losses.append(run.step())
                yield Progress(
                    "batch", step, opts.steps_per_epoch, 1, metrics={"loss": losses[-1]}
                )
            epoch += 1
            metrics, preview = run.end_epoch(epoch, float(np.mean(losses)), started)
            show = preview if epoch % opts.preview_every == 0 else None
            region = run.val_regions[0] if show is not None else None
            yield FinetuneProgress(
                "epoch", epoch, opts.epochs, 0, f"epoch {epoch}", metrics, show, region
            )
            if budget is not None and time.monotonic() - started >= budget:
                break
    if run.best_state is not None:
        run.model.load_state_dict(run.best_state)
    run.model.eval()
    out = Path(opts.out) if opts.out is not None else None
    return FinetuneResult(
        run.model, run.best_epoch, run.best_metrics, epoch, out,
        run.train_regions, run.val_regions, run.history,
    )  # fmt: skip
