"""Reading bioimage.io packages back: ``load_model("PKG.zip")`` for packages napari-sa2net wrote.

A package (``.zip`` with an ``rdf.yaml``, or the ``rdf.yaml`` of an unpacked one) is read as data
only: the description with a safe YAML loader, the ``pytorch_state_dict`` weights with
``torch.load(weights_only=True)``, the network rebuilt from this package's own code and the
configuration stored under ``config.napari_sa2net``. Nothing from the package is imported or
executed (not its architecture file, not its TorchScript), so a package from anywhere is as safe
to open as an image. Other architectures are refused with a one-line ``ValueError``.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from .checkpoint_format import FORMAT, FORMAT_VERSION

#: Names of the description file inside a package (the spec writes ``rdf.yaml``).
DESCRIPTION_NAMES = ("rdf.yaml", "bioimageio.yaml")

#: ``config`` key and architecture callable of the packages ``napari_sa2net.export`` writes.
CONFIG_KEY = "napari_sa2net"
CALLABLE = "SA2NetProbabilities"

SUPPORTED = (
    "napari-sa2net loads bioimage.io packages of SA2-Net that it exported itself "
    "(`sa2net export`, with config.napari_sa2net in rdf.yaml)"
)


def _description_name(names: list[str]) -> str | None:
    found = [n for n in DESCRIPTION_NAMES if n in names]
    found += [n for n in names if "/" not in n and n.endswith(".bioimageio.yaml")]
    return found[0] if found else None


def is_bioimageio_package(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a bioimage.io package: a zip holding ``rdf.yaml``, or that file."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.name in DESCRIPTION_NAMES or path.name.endswith(".bioimageio.yaml"):
        return True
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return _description_name(archive.namelist()) is not None


def _reader(path: Path) -> tuple[str, Any]:
    """``(description text, read(name) -> bytes)`` for a zip or an unpacked ``rdf.yaml``."""
    if not zipfile.is_zipfile(path):
        folder = path.parent
        return path.read_text(encoding="utf-8"), lambda name: (folder / name).read_bytes()
    with zipfile.ZipFile(path) as archive:
        text = archive.read(_description_name(archive.namelist())).decode("utf-8")

    def read(name: str) -> bytes:
        with zipfile.ZipFile(path) as archive:
            return archive.read(name)

    return text, read


def _member(source: Any, path: Path) -> str:
    """A weights ``source`` as a relative name inside the package (never a URL or ``..``)."""
    name = str(source or "")
    parts = PurePosixPath(name).parts
    if not name or "://" in name or name.startswith("/") or ".." in parts:
        raise ValueError(
            f"{path}: the pytorch_state_dict weights ({name!r}) are not a file inside the "
            "package; napari-sa2net reads packages whose weights travel with them"
        )
    return name


def _ours(description: Any, path: Path) -> dict[str, Any]:
    """The ``config.napari_sa2net`` section, or a ``ValueError`` naming what the package is."""
    if not isinstance(description, dict) or description.get("type") != "model":
        kind = description.get("type") if isinstance(description, dict) else "no description"
        raise ValueError(f"{path} is a bioimage.io {kind}, not a model; {SUPPORTED}")
    ours = (description.get("config") or {}).get(CONFIG_KEY)
    weights = description.get("weights") or {}
    state = weights.get("pytorch_state_dict") or {}
    callable_name = (state.get("architecture") or {}).get("callable")
    if not isinstance(ours, dict) or callable_name != CALLABLE:
        formats = ", ".join(sorted(weights)) or "none"
        raise ValueError(
            f"{path} is the bioimage.io model {description.get('name')!r} of another "
            f"architecture (weights: {formats}); {SUPPORTED}. Run other models with "
            "bioimageio.core"
        )
    return ours


def _state_dict(description: dict, read: Any, path: Path) -> dict[str, torch.Tensor]:
    entry = description["weights"]["pytorch_state_dict"]
    data = read(_member(entry.get("source"), path))
    expected = entry.get("sha256")
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise ValueError(
            f"{path}: the weights do not match their sha256 in rdf.yaml (the package is "
            "damaged or was edited); export it again"
        )
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # any unpickling failure means a damaged or foreign file
        raise ValueError(
            f"{path}: unreadable weights ({type(err).__name__}); export it again"
        ) from err
    if not isinstance(state, dict):
        raise ValueError(f"{path}: the weights are not a state dict; export it again")
    return state


def read_package(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dictionary (``checkpoints`` format) of a package napari-sa2net exported.

    Raises
    ------
    ValueError
        Not a model, another architecture, weights missing / outside the package / damaged.
    """
    import yaml

    path = Path(path)
    text, read = _reader(path)
    description = yaml.safe_load(text)
    ours = _ours(description, path)
    metadata = dict(ours.get("metadata") or {})
    metadata["bioimageio"] = {
        "package": path.name,
        "id": description.get("id"),
        "version": description.get("version"),
    }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": ours["config"],
        "normalization": ours["normalization"],
        "metadata": metadata,
        "state_dict": _state_dict(description, read, path),
    }
