"""Models shipped inside the package: ``napari_sa2net/bundled/NAME.pt``, found by name."""

from __future__ import annotations

from pathlib import Path

#: Folder holding the bundled checkpoints (may be missing in a source checkout).
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "bundled"

#: Name of the model used when the user picks none.
DEFAULT_MODEL = "nuclei-fluo"


def list_bundled_models() -> list[str]:
    """Sorted names (file stems) of the bundled ``*.pt`` checkpoints; empty when there are none."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(path.stem for path in BUNDLED_DIR.glob("*.pt") if path.is_file())


def bundled_model_path(name: str) -> Path:
    """Path of the bundled checkpoint ``name``; ``ValueError`` listing the names that exist."""
    path = BUNDLED_DIR / f"{name}.pt"
    if name in list_bundled_models():
        return path
    available = ", ".join(list_bundled_models()) or "none are installed"
    raise ValueError(
        f"{name!r} is neither a checkpoint file nor a bundled model (bundled models: "
        f"{available}); pass the path of a .pt file written by napari-sa2net"
    )
