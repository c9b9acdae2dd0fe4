"""Checkpoints: weights + configuration + input normalization + provenance, in one ``.pt`` file.

Layout of the saved dictionary (format version 1)::

    format          "napari-sa2net-checkpoint"
    format_version  1
    config          {"name", "width", "in_channels", "num_classes", "centre"} ("centre" absent:
                    False, as in checkpoints written before the centre map existed)
    normalization   Normalization.to_dict()
    metadata        JSON-like dict: training data, epochs, metrics, package_version, created
    state_dict      the model's weights

Loading rebuilds the model from ``config`` without guessing and refuses weights that do not fit.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..io.atomic import atomic_path
from ..normalization import Normalization
from .bundled import bundled_model_path
from .checkpoint_format import FORMAT, FORMAT_VERSION
from .devices import resolve_device
from .sa2net import CONFIGS, SA2Net, SA2NetConfig
from .safe_load import load_plain, save_torch


def _jsonable(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata as plain JSON types (numpy scalars become floats/ints, paths become strings)."""

    def convert(value: Any) -> Any:
        if hasattr(value, "item"):
            return value.item()
        if hasattr(value, "tolist"):
            return value.tolist()
        return str(value)

    return json.loads(json.dumps(dict(metadata), default=convert))


def checkpoint_dict(model: SA2Net) -> dict[str, Any]:
    """The dictionary :func:`save_checkpoint` writes (weights on the CPU)."""
    from .. import __version__

    metadata = _jsonable(model.metadata)
    metadata["package_version"] = __version__
    metadata["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": {
            "name": model.config.name,
            "width": model.config.width,
            "in_channels": model.in_channels,
            "num_classes": model.num_classes,
            "centre": model.centre,
        },
        "normalization": model.normalization.to_dict(),
        "metadata": metadata,
        "state_dict": plain_state_dict(model),
    }


def plain_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s weights as CPU copies with standard strides: a file written from them has the
    same bytes whatever layout the weights ran in (:func:`.devices.use_fast_layout`)."""
    return {
        k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
        for k, v in model.state_dict().items()
    }


def save_checkpoint(model: SA2Net, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``model`` to ``path`` atomically (temporary sibling, then rename); returns the path.

    The file never exists half-written: an interrupted save leaves the previous file (if any).
    ``overwrite=False`` refuses to replace an existing file (``FileExistsError``).
    """
    if not isinstance(model, SA2Net):
        raise ValueError(f"save_checkpoint needs an SA2Net model, got {type(model).__name__}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True or choose another file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = checkpoint_dict(model)
    with atomic_path(path, overwrite=True) as partial:
        save_torch(payload, partial)
    return path


def model_hash(path: str | os.PathLike, length: int = 12) -> str:
    """First ``length`` hex digits of the SHA-256 of a checkpoint file, for provenance."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def describe_state_dict(state_dict: Mapping[str, torch.Tensor]) -> str:
    """What network a state dict was made for, read from its stem and head shapes."""
    stem = state_dict.get("encoder.stem.0.weight")
    head = state_dict.get("head.weight")
    if stem is None or head is None or stem.ndim != 4:
        return "weights that are not an SA2-Net of this package"
    width = stem.shape[0]
    names = [n for n, cfg in CONFIGS.items() if cfg.width == width]
    name = names[0] if names else f"a custom configuration of width {width}"
    return f"{name} (width {width}), in_channels={stem.shape[1]}, outputs={head.shape[0]}"


def state_dict_mismatches(
    model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]
) -> list[str]:
    """Keys of ``state_dict`` that do not fit ``model``: mismatched shapes, missing, unexpected."""
    own = model.state_dict()
    problems = [
        f"shape mismatch {key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}"
        for key, value in state_dict.items()
        if key in own and tuple(value.shape) != tuple(own[key].shape)
    ]
    problems += [f"missing {key} {tuple(own[key].shape)}" for key in own if key not in state_dict]
    problems += [
        f"unexpected {key} {tuple(value.shape)}"
        for key, value in state_dict.items()
        if key not in own
    ]
    return problems


def load_state_dict_checked(
    model: SA2Net, state_dict: Mapping[str, torch.Tensor], strict: bool = True
) -> list[str]:
    """Load weights into ``model``, explaining every key that does not fit.

    ``strict=True`` raises ``ValueError`` listing mismatched, missing and unexpected keys with
    their shapes and the configuration the weights were made for. ``strict=False`` loads the keys
    whose shapes fit (e.g. everything but the head when finetuning to another class count) and
    returns the list of problems. A full checkpoint dictionary is accepted too.
    """
    if "state_dict" in state_dict and "config" in state_dict:
        state_dict = state_dict["state_dict"]
    problems = state_dict_mismatches(model, state_dict)
    if problems and strict:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        ours = f"{model.config.name}, in_channels={model.in_channels}, "
        ours += f"num_classes={model.num_classes}, centre={model.centre}"
        raise ValueError(
            f"the weights do not fit this model ({ours}); they were made for "
            f"{describe_state_dict(state_dict)}. Create the model with that configuration "
            f"(or load the checkpoint with load_model). Problems:\n  {shown}{more}"
        )
    own = model.state_dict()
    fitting = {
        k: v for k, v in state_dict.items() if k in own and tuple(v.shape) == tuple(own[k].shape)
    }
    model.load_state_dict(fitting, strict=False)
    return problems


def resolve_checkpoint_path(path_or_name: str | os.PathLike) -> Path:
    """The file behind a checkpoint path or a bundled model name (``ValueError`` if none)."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    if path.exists():
        raise ValueError(f"{path} is not a file; pass a .pt checkpoint written by napari-sa2net")
    name = str(path_or_name)
    if os.sep in name or "/" in name or name.endswith((".pt", ".zip")):
        raise ValueError(f"checkpoint file {path} does not exist; check the path")
    return bundled_model_path(name)


def read_checkpoint(path_or_name: str | os.PathLike) -> dict[str, Any]:
    """The validated checkpoint dictionary of a file or bundled model name (tensors on CPU)."""
    path = resolve_checkpoint_path(path_or_name)
    from .package import is_bioimageio_package, read_package

    if is_bioimageio_package(path):
        return read_package(path)
    payload = load_plain(
        path,
        what="a readable napari-sa2net checkpoint",
        fix="pass a .pt file written by save_checkpoint or `sa2net train`",
    )
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(
            f"{path} holds no napari-sa2net checkpoint (no configuration stored with the "
            "weights); if it is a bare state dict, build the model with create_model(...) and "
            "use load_state_dict_checked(model, state_dict)"
        )
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses checkpoint format {payload['format_version']}, newer than this "
            f"napari-sa2net reads ({FORMAT_VERSION}); upgrade napari-sa2net"
        )
    return payload


def load_model(path_or_name: str | os.PathLike, device: str | torch.device = "cpu") -> SA2Net:
    """Rebuild a model from a checkpoint file or a bundled model name, in eval mode.

    Parameters
    ----------
    path_or_name : str or PathLike
        A ``.pt`` file written by :func:`save_checkpoint`, the name of a bundled model
        (see :func:`list_bundled_models`), or a bioimage.io package (``.zip``) that
        napari-sa2net exported (read as data, see :mod:`napari_sa2net.model.package`).
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.
    """
    target = resolve_device(device)
    payload = read_checkpoint(path_or_name)
    cfg = payload["config"]
    known = CONFIGS.get(cfg["name"])
    config = known if known and known.width == cfg["width"] else SA2NetConfig(**_config(cfg))
    model = SA2Net(
        config,
        in_channels=int(cfg["in_channels"]),
        num_classes=int(cfg["num_classes"]),
        normalization=Normalization.from_dict(payload["normalization"]),
        metadata=payload.get("metadata", {}),
        centre=bool(cfg.get("centre", False)),
    )
    load_state_dict_checked(model, payload["state_dict"], strict=True)
    model.checkpoint_path = resolve_checkpoint_path(path_or_name)
    return model.to(target).eval()


def _config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": str(cfg["name"]), "width": int(cfg["width"])}
