"""``.pt`` files as plain data: loading never runs code from a file, saving reports a full disk.

A pickle can name any Python callable to rebuild an object, so ``torch.load(weights_only=False)``
runs whatever a shared or downloaded file asks for. Everything this package reads from a user's
``.pt`` (checkpoints, training state) goes through :func:`load_plain`, which accepts tensors and
plain containers only (``weights_only=True``, no extra globals allowed); :func:`plain` brings
numpy values to those types before saving.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import one_line


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays made plain Python (tensors kept).

    Dicts, lists, tuples, str, int, float, bool, None and tensors are what :func:`load_plain`
    reads back; numpy values (an RNG state's arrays, an ``np.float64`` metric) become lists and
    Python numbers; anything else is a ``TypeError`` (a bug: it would not load again).
    """
    if isinstance(value, torch.Tensor) or value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):  # kept: optimizers store ``betas`` as a tuple
        return tuple(plain(v) for v in value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # also np.float64, a float subclass
        return float(value)
    if hasattr(value, "tolist"):  # numpy scalar or array
        return plain(value.tolist())
    raise TypeError(f"cannot store a {type(value).__name__} as plain data")


def load_plain(path: str | os.PathLike, *, what: str, fix: str) -> Any:
    """Load a ``.pt`` file that may hold tensors and plain containers only (on the CPU).

    Parameters
    ----------
    path : path-like
        The file (a user may have downloaded or been sent it).
    what : str
        What the file should be, for the message ("a napari-sa2net checkpoint").
    fix : str
        What the user should do when it is not ("delete it to ...").

    Raises
    ------
    ValueError
        One line naming the file and ``fix``: the file asks to run code or build Python
        objects (refused; nothing from it ran), or it is no readable ``.pt`` file at all.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's own text advises weights_only=False, the one thing never to do with it.
        raise ValueError(
            f"{path} is not {what}: it asks to build Python objects, not just tensors and plain "
            f"data, so it was refused and nothing in it ran; {fix}"
        ) from err
    except Exception as err:  # torch raises many types for files that are no .pt
        detail = one_line(err)[:160]
        raise ValueError(f"{path} is not {what} ({type(err).__name__}: {detail}); {fix}") from err


def save_torch(payload: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a Python file, so a full disk is ``OSError(ENOSPC)``.

    Given a path, torch writes with its own C++ stream and reports a full disk as a
    ``RuntimeError`` ("unexpected pos ..."), which says neither what happened nor what to do.
    """
    with open(path, "wb") as handle:
        torch.save(payload, handle)
