"""Tiny synthetic nuclei: touching convex objects, an image of them, and TIFF folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sa2net._progress import run_job


def touching_nuclei(
    shape: tuple[int, int] = (96, 96), n: int = 10, radius: float = 9.0, seed: int = 0
) -> np.ndarray:
    """Disks cut by their Voronoi cells: convex objects, many touching (uint16 labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(radius, np.array(shape) - radius, size=(n, 2))
    yy, xx = np.indices(shape)
    dist = np.sqrt(
        (yy[None] - centres[:, 0, None, None]) ** 2 + (xx[None] - centres[:, 1, None, None]) ** 2
    )
    labels = (np.argmin(dist, axis=0) + 1).astype(np.uint16)
    labels[dist.min(axis=0) > radius] = 0
    return labels


def nuclei_image(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """uint16 fluorescence-like image of ``labels`` (bright objects, darker rims, noise)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    inner = ndi.binary_erosion(labels > 0, iterations=1) & (
        ndi.maximum_filter(labels, 3) == ndi.minimum_filter(labels, 3)
    )
    image = 100 + 900 * (labels > 0) + 600 * inner + rng.normal(0, 40, labels.shape)
    return np.clip(image, 0, 65535).astype(np.uint16)


def write_folder(root: Path, n_images: int, shape=(96, 96), seed: int = 0) -> tuple[Path, Path]:
    images, labels = root / "images", root / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for i in range(n_images):
        lab = touching_nuclei(shape, seed=seed + i)
        tifffile.imwrite(images / f"img{i}.tif", nuclei_image(lab, seed + i))
        tifffile.imwrite(labels / f"img{i}.tif", lab)
    return images, labels


@pytest.fixture
def tiny_folders(tmp_path: Path) -> dict[str, Path]:
    """``train/`` (3 images) and ``val/`` (1 image) folders of 96×96 synthetic nuclei."""
    train_images, train_labels = write_folder(tmp_path / "train", 3, seed=0)
    val_images, val_labels = write_folder(tmp_path / "val", 1, seed=10)
    return {
        "images": train_images,
        "labels": train_labels,
        "val_images": val_images,
        "val_labels": val_labels,
        "root": tmp_path,
    }


@pytest.fixture
def heap_calls(monkeypatch) -> list[str]:
    """Records ``"keep"`` / ``"free"`` as a job keeps freed memory and hands it back."""
    calls: list[str] = []
    monkeypatch.setattr("napari_sa2net.memory.keep_freed_memory", lambda: calls.append("keep"))
    monkeypatch.setattr("napari_sa2net.memory.release_memory", lambda: calls.append("free"))
    return calls


def check_memory_kept_and_freed(calls: list[str], finished, cancelled) -> None:
    """A job keeps freed memory while it runs and hands it back when it ends (``finished``,
    run to its end) or is closed (``cancelled``, closed during its first batch)."""
    run_job(finished)
    assert calls == ["keep", "free"]
    calls.clear()
    for event in cancelled:
        if event.stage == "batch":
            break
    assert calls == ["keep"]
    cancelled.close()
    assert calls == ["keep", "free"]
