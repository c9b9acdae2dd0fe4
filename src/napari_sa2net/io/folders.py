"""Folders of 2-D image / label pairs for training and evaluation.

Layout: ``images/NAME.tif`` next to ``labels/NAME.tif`` (instance ids, 0 = background), paired by
file stem. Readable formats are TIFF (tifffile) and PNG / JPEG (imageio).

Non-image files are an error, not a silent skip: a ``notes.txt`` or a ``.zip`` in a training
folder usually means the folder is not the one the user meant, and silently training on fewer
images than expected is worse than one clear message. Hidden files (``.DS_Store``, ``._x.tif``)
and the desktop junk files ``Thumbs.db`` / ``desktop.ini`` are ignored; sub-folders are ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Suffixes (lower case) read by :func:`read_image_plane`.
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
_TIFF_SUFFIXES = (".tif", ".tiff")
_JUNK_FILES = ("thumbs.db", "desktop.ini")
#: Largest channel count accepted on the last or first axis of a 3-D plane.
MAX_CHANNELS = 4


def image_stem(path: Path) -> str:
    """Pairing key of a file: its name without suffix (and without ``.ome`` for OME-TIFF)."""
    stem = path.stem
    return stem[:-4] if stem.lower().endswith(".ome") else stem


def _list_images(folder: Path, role: str) -> dict[str, Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{role} folder {str(folder)!r} does not exist: pass an existing folder")
    files = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.name.lower() not in _JUNK_FILES
    ]
    others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        raise ValueError(
            f"{role} folder {str(folder)!r} holds non-image files {others[:10]}"
            f"{' ...' if len(others) > 10 else ''}: move them out (readable: "
            f"{', '.join(IMAGE_SUFFIXES)})"
        )
    if not files:
        raise ValueError(
            f"{role} folder {str(folder)!r} holds no images: put {role} files "
            f"({', '.join(IMAGE_SUFFIXES)}) in it or pass another folder"
        )
    by_stem: dict[str, Path] = {}
    for path in files:
        key = image_stem(path)
        if key in by_stem:
            raise ValueError(
                f"{role} folder {str(folder)!r} holds two files for {key!r}: "
                f"{by_stem[key].name} and {path.name}; keep one"
            )
        by_stem[key] = path
    return by_stem


def find_image_label_pairs(
    images_dir: str | Path, labels_dir: str | Path
) -> list[tuple[Path, Path]]:
    """Pair ``images_dir/NAME.*`` with ``labels_dir/NAME.*`` by file stem.

    Parameters
    ----------
    images_dir, labels_dir : str or Path
        Folders of raw images and of instance label images.

    Returns
    -------
    list of (Path, Path)
        ``(image, label)`` pairs sorted by stem.

    Raises
    ------
    ValueError
        A folder is missing or empty, holds non-image files or duplicate stems, or a file has no
        partner (all unpaired names are listed).
    """
    images = _list_images(Path(images_dir), "images")
    labels = _list_images(Path(labels_dir), "labels")
    lonely_images = sorted(images.keys() - labels.keys())
    lonely_labels = sorted(labels.keys() - images.keys())
    if lonely_images or lonely_labels:
        parts = []
        if lonely_images:
            names = [images[k].name for k in lonely_images[:10]]
            parts.append(f"images without a label in {str(labels_dir)!r}: {names}")
        if lonely_labels:
            names = [labels[k].name for k in lonely_labels[:10]]
            parts.append(f"labels without an image in {str(images_dir)!r}: {names}")
        raise ValueError(
            "unpaired files: "
            + "; ".join(parts)
            + ". Give each image a label file with the same name (or remove the extra files)"
        )
    return [(images[k], labels[k]) for k in sorted(images)]


def _read_tiff(path: Path) -> tuple[np.ndarray, str]:
    import tifffile

    from .tiff_arrays import open_tiff_file

    try:
        with open_tiff_file(path) as tif:
            series = tif.series[0]
            return series.asarray(), series.axes
    # TiffFileError is no ValueError in tifffile <= 2025.5 (Python 3.10); damaged compressed
    # data raises imagecodecs' errors, which are RuntimeErrors.
    except (tifffile.TiffFileError, RuntimeError, IndexError, KeyError, TypeError) as err:
        raise ValueError(str(err)) from err


def read_image_plane(path: str | Path) -> np.ndarray:
    """Read one 2-D image into memory as ``YX`` or ``YXC`` (C ≤ 4, channels last).

    Singleton axes are dropped; a leading channel axis of at most 4 (``CYX``) is moved last. PNG
    and JPEG alpha channels are dropped.

    Raises
    ------
    ValueError
        The file cannot be read, or it is a 3-D stack / time series rather than one plane.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"{path.name}: unsupported format {suffix!r}; use {IMAGE_SUFFIXES}")
    try:
        if suffix in _TIFF_SUFFIXES:
            data, axes = _read_tiff(path)
        else:
            import imageio.v3 as iio

            data, axes = np.asarray(iio.imread(path)), ""
            if data.ndim == 3 and data.shape[-1] in (2, 4):  # grey+alpha or RGBA
                data = data[..., :-1]
    except (OSError, ValueError) as err:
        raise ValueError(
            f"cannot read {str(path)!r} as an image ({err}); is the file intact?"
        ) from err
    return _as_plane(data, axes, path)


def _as_plane(data: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """Squeeze ``data`` to ``YX`` / ``YXC`` or explain why it is not one plane."""
    if axes and len(axes) == data.ndim:
        keep = [i for i, n in enumerate(data.shape) if n > 1]
        axes = "".join(axes[i] for i in keep)
    data = np.squeeze(data)
    if data.ndim == 2:
        return data
    channel_last = data.ndim == 3 and data.shape[-1] <= MAX_CHANNELS
    channel_first = data.ndim == 3 and data.shape[0] <= MAX_CHANNELS and axes[:1] in ("C", "S")
    if channel_last and not (axes[:1] in ("C", "S") and axes[-1:] not in ("C", "S")):
        return data
    if channel_first:
        return np.moveaxis(data, 0, -1)
    raise ValueError(
        f"{path.name} holds a stack of shape {data.shape} (axes {axes or 'unknown'}), but a 2-D "
        f"image (YX or YXC with at most {MAX_CHANNELS} channels) is expected: save one plane "
        "(e.g. a maximum projection or a single z-slice) per file"
    )


def read_label_plane(path: str | Path) -> np.ndarray:
    """Read an instance label image as a ``YX`` integer array (0 = background).

    Raises
    ------
    ValueError
        The labels are not 2-D, not integral, or negative.
    """
    path = Path(path)
    labels = read_image_plane(path)
    if labels.ndim != 2:
        raise ValueError(
            f"label image {path.name} has shape {labels.shape}; labels must be one 2-D plane of "
            "integer ids (0 = background): save them as a single-channel image"
        )
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise ValueError(
                f"label image {path.name} holds non-integer values; labels must be integer ids "
                "(0 = background): save the label layer, not a probability map"
            )
        labels = labels.astype(np.int64)
    elif labels.dtype.kind not in "iub":
        raise ValueError(f"label image {path.name} has dtype {labels.dtype}; expected integers")
    if labels.dtype.kind == "i" and labels.min(initial=0) < 0:
        raise ValueError(f"label image {path.name} holds negative ids; use 0 for background")
    return labels.astype(np.uint32, copy=False)


def read_training_pair(
    image_path: str | Path, label_path: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """Read and check one image / label pair.

    Returns
    -------
    image : np.ndarray
        ``YXC`` array in the file's dtype (C = 1 for grayscale).
    labels : np.ndarray
        ``YX`` uint32 instance ids.

    Raises
    ------
    ValueError
        Shape mismatch between image and labels, NaN / inf values, or a constant image; the
        message names the file.
    """
    image_path, label_path = Path(image_path), Path(label_path)
    image = read_image_plane(image_path)
    if image.ndim == 2:
        image = image[..., None]
    labels = read_label_plane(label_path)
    if image.shape[:2] != labels.shape:
        raise ValueError(
            f"{image_path.name}: image is {image.shape[0]}×{image.shape[1]} but its labels "
            f"{label_path.name} are {labels.shape[0]}×{labels.shape[1]}: the label image must "
            "have the image's height and width"
        )
    if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
        raise ValueError(
            f"{image_path.name} holds NaN or infinite values: replace them (e.g. with 0) "
            "or remove the image from the folder"
        )
    flat = image.reshape(-1, image.shape[-1])
    if np.all(flat.min(axis=0) == flat.max(axis=0)):
        raise ValueError(
            f"{image_path.name} is constant (every pixel is {flat[0].tolist()}): it carries "
            "no signal to learn from; remove it or check the export"
        )
    return image, labels
