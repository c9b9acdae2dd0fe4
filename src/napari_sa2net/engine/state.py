"""Resume state (optimizer, scheduler, epoch, sampler) beside a checkpoint, written atomically.

A checkpoint ``run.last.pt`` has its state in ``run.last.state.pt``; the model checkpoint itself
stays a plain, loadable model file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def state_path(checkpoint: str | os.PathLike) -> Path:
    """``run.last.pt`` → ``run.last.state.pt``."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}.state.pt")


def last_path(out: str | os.PathLike) -> Path:
    """``run.pt`` → ``run.last.pt`` (the checkpoint of the latest epoch; ``out`` is the best)."""
    path = Path(out)
    return path.with_name(f"{path.stem}.last{path.suffix or '.pt'}")


def save_state(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (:func:`napari_sa2net.io.atomic.atomic_path`)."""
    from ..io.atomic import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as partial:
        torch.save(state, partial)
    return path


def load_state(path: str | os.PathLike) -> dict[str, Any] | None:
    """The saved resume state, or ``None`` when there is no state file."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(
            f"{path} is not a readable training state ({type(err).__name__}: {err}); delete it "
            "to resume with a fresh optimizer"
        ) from err
