"""Resume state (optimizer, scheduler, epoch, sampler) beside a checkpoint, written atomically.

A checkpoint ``run.last.pt`` has its state in ``run.last.state.pt``; the model checkpoint itself
stays a plain, loadable model file. The state holds tensors and plain Python data only (numpy
values are converted when saving) and is read with
:func:`napari_sa2net.model.safe_load.load_plain`, so a state file cannot run code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import one_line
from ..model.safe_load import load_plain, plain, save_torch

#: What to do about a state file that cannot be used (the checkpoint itself still can).
FIX = "delete it to resume from the checkpoint's weights with a fresh optimizer"
#: Entries of a state file and the types they must have.
FIELDS: dict[str, type | tuple[type, ...]] = {
    "epoch": int,
    "optimizer": dict,
    "scheduler": dict,
    "scaler": dict,
    "sampler_rng": dict,
    "torch_rng": torch.Tensor,
    "best_epoch": int,
    "best_score": (int, float),
    "best_metrics": dict,
    "history": list,
    "elapsed": (int, float),
}


def state_path(checkpoint: str | os.PathLike) -> Path:
    """``run.last.pt`` → ``run.last.state.pt``."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}.state.pt")


def last_path(out: str | os.PathLike) -> Path:
    """``run.pt`` → ``run.last.pt`` (the checkpoint of the latest epoch; ``out`` is the best)."""
    path = Path(out)
    return path.with_name(f"{path.stem}.last{path.suffix or '.pt'}")


def save_state(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Save ``state`` as plain data, atomically (:func:`napari_sa2net.io.atomic.atomic_path`)."""
    from ..io.atomic import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as partial:
        save_torch(plain(state), partial)
    return path


def load_state(path: str | os.PathLike) -> dict[str, Any] | None:
    """The saved resume state, or ``None`` when there is no state file.

    Raises
    ------
    ValueError
        One line naming the file and :data:`FIX`: it asks to run code (refused), it is no
        ``.pt`` file, or it lacks an entry of :data:`FIELDS`.
    """
    path = Path(path)
    if not path.is_file():
        return None
    state = load_plain(path, what="a readable napari-sa2net training state", fix=FIX)
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no napari-sa2net training state; {FIX}")
    for key, kind in FIELDS.items():
        if not isinstance(state.get(key), kind):
            raise ValueError(f"{path} is an incomplete training state (no valid {key!r}); {FIX}")
    return state


def restore_state(
    state: dict[str, Any],
    path: str | os.PathLike,
    *,
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    rng: Any,
) -> None:
    """Put a loaded state into a run's optimizer, scheduler, gradient scaler and RNGs.

    ``rng`` is the sampler's ``numpy.random.Generator``. A state made for another model or
    optimizer is a one-line ``ValueError`` naming ``path`` and :data:`FIX`.
    """
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state["scaler"] and scaler.is_enabled():  # empty when saved without fp16
            scaler.load_state_dict(state["scaler"])
        rng.bit_generator.state = state["sampler_rng"]
        torch.set_rng_state(state["torch_rng"])
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as err:
        raise ValueError(f"{path} does not fit this run ({one_line(err)[:160]}); {FIX}") from err
