"""Training data: targets from instance labels, and a fast in-memory random-crop sampler.

Every image is normalized once with the model's :class:`~napari_sa2net.normalization.Normalization`
(statistics of the whole image) and kept in RAM with its precomputed target, so one sample costs a
slice, an optional affine warp of one crop, a rot90/flip and a few array operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..normalization import Normalization

#: Target value of pixels the loss ignores (padding, outside finetuning regions).
IGNORE = 255
BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2


def labels_to_classes(labels: np.ndarray, boundary_width: int = 1) -> np.ndarray:
    """3-class training target of an instance label image.

    Parameters
    ----------
    labels : np.ndarray
        ``YX`` integer instance ids, 0 = background.
    boundary_width : int
        Width in pixels of the boundary ring.

    Returns
    -------
    np.ndarray
        ``YX`` uint8: 0 background, 1 interior, 2 boundary — object pixels within
        ``boundary_width`` (8-neighbourhood) of another object or of the background. The image
        edge is not a boundary. ``inference.postprocess.probabilities_to_instances`` inverts this.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a YX image, got shape {labels.shape}")
    if boundary_width < 1:
        raise ValueError(f"boundary_width must be >= 1, got {boundary_width}")
    size = 2 * boundary_width + 1
    high = ndi.maximum_filter(labels, size=size, mode="nearest")
    low = ndi.minimum_filter(labels, size=size, mode="nearest")
    target = np.zeros(labels.shape, np.uint8)
    inside = labels > 0
    target[inside] = INTERIOR
    target[inside & ((high != labels) | (low != labels))] = BOUNDARY
    return target


def median_object_diameter(label_images: Sequence[np.ndarray]) -> float:
    """Median equivalent-circle diameter (pixels) of the objects of instance label images."""
    diameters = []
    for labels in label_images:
        areas = np.bincount(np.asarray(labels).ravel())[1:]
        diameters.append(np.sqrt(4.0 * areas[areas > 0] / np.pi))
    values = np.concatenate(diameters) if diameters else np.empty(0)
    if values.size == 0:
        raise ValueError("the training labels hold no objects; paint at least one object")
    return round(float(np.median(values)), 2)


def make_target(labels: np.ndarray, mode: str, boundary_width: int = 1) -> np.ndarray:
    """Target of one label image: binary foreground (``mode="binary"``) or 3 classes."""
    if mode == "binary":
        return (np.asarray(labels) > 0).astype(np.uint8)
    if mode == "instance":
        return labels_to_classes(labels, boundary_width)
    raise ValueError(f"mode must be 'binary' or 'instance', got {mode!r}")


def _coordinates(mask: np.ndarray, limit: int = 50_000) -> np.ndarray:
    """``N×2`` (y, x) coordinates of ``mask``, evenly subsampled to at most ~``limit``."""
    ys, xs = np.nonzero(mask)
    step = max(1, ys.size // limit)
    return np.stack([ys[::step], xs[::step]], axis=1)


@dataclass(frozen=True)
class Augmentation:
    """Random augmentation settings (all applied to each crop independently).

    rot90/flip are always on. With probability ``p_affine`` the crop is sampled through a small
    rotation (``max_rotation`` degrees) and a scale factor from ``scale_range``; image pixels use
    linear interpolation, targets nearest. Intensity jitter: gain (log-uniform in ``gain_range``),
    gamma (log-uniform in ``gamma_range``, on the crop's own range) and an additive offset.
    """

    p_affine: float = 0.25
    max_rotation: float = 20.0
    scale_range: tuple[float, float] = (1.0, 1.0)
    gain_range: tuple[float, float] = (0.8, 1.25)
    gamma_range: tuple[float, float] = (0.8, 1.25)
    max_offset: float = 0.1


class CropSampler:
    """Random ``crop × crop`` training samples from images held in memory.

    Parameters
    ----------
    images : sequence of np.ndarray
        ``YXC`` float32 images, already normalized.
    targets : sequence of np.ndarray
        ``YX`` uint8 targets (class ids, :data:`IGNORE` for ignored pixels).
    crop : int
        Side of the square crops. Smaller images are reflect-padded, the padding ignored.
    foreground_bias : float
        Probability that a crop is centred on a random foreground pixel rather than anywhere.
    augmentation : Augmentation or None
        ``None`` disables every augmentation.
    seed : int
        Seed of the sampler's own random generator (same seed, same batches).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        targets: Sequence[np.ndarray],
        crop: int = 256,
        *,
        foreground_bias: float = 0.7,
        augmentation: Augmentation | None = Augmentation(),
        seed: int = 0,
    ) -> None:
        if not images or len(images) != len(targets):
            raise ValueError("CropSampler needs one target per image and at least one image")
        if crop < 16:
            raise ValueError(f"crop must be at least 16 pixels, got {crop}")
        self.crop = int(crop)
        self.images = [self._pad(np.asarray(im, np.float32), 0) for im in images]
        self.targets = [self._pad(np.asarray(t, np.uint8), IGNORE) for t in targets]
        self.foreground_bias = foreground_bias
        self.augmentation = augmentation
        self.rng = np.random.default_rng(seed)
        # Foreground and valid (not ignored) pixel coordinates, subsampled so huge images stay
        # cheap; unbiased crops are centred on valid pixels, so sparse finetuning regions and
        # padding do not waste samples.
        self.foreground = [_coordinates((t > 0) & (t != IGNORE)) for t in self.targets]
        self.valid = [_coordinates(t != IGNORE) for t in self.targets]
        areas = np.array([len(v) for v in self.valid], np.float64)
        if not areas.sum():
            raise ValueError("every target pixel is ignored: there is nothing to train on")
        self.weights = areas / areas.sum()

    def _pad(self, array: np.ndarray, value: int) -> np.ndarray:
        pad_y, pad_x = max(0, self.crop - array.shape[0]), max(0, self.crop - array.shape[1])
        if not (pad_y or pad_x):
            return array
        widths = [(0, pad_y), (0, pad_x)] + [(0, 0)] * (array.ndim - 2)
        if value == IGNORE:
            return np.pad(array, widths, constant_values=IGNORE)
        return np.pad(array, widths, mode="reflect" if min(array.shape[:2]) > 1 else "edge")

    @property
    def channels(self) -> int:
        return self.images[0].shape[-1]

    def _centre(self, index: int) -> tuple[float, float]:
        fg = self.foreground[index]
        pool = fg if fg.size and self.rng.random() < self.foreground_bias else self.valid[index]
        y, x = pool[self.rng.integers(len(pool))]
        jitter = self.rng.integers(-self.crop // 4, self.crop // 4 + 1, size=2)
        return float(y + jitter[0]), float(x + jitter[1])

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One augmented sample: ``(C×crop×crop float32 image, crop×crop uint8 target)``."""
        index = int(self.rng.choice(len(self.images), p=self.weights))
        image, target = self.images[index], self.targets[index]
        cy, cx = self._centre(index)
        aug = self.augmentation
        if aug is not None and self.rng.random() < aug.p_affine:
            x, y = self._warped(image, target, cy, cx, aug)
        else:
            half = self.crop / 2
            y0 = int(np.clip(round(cy - half), 0, target.shape[0] - self.crop))
            x0 = int(np.clip(round(cx - half), 0, target.shape[1] - self.crop))
            x = image[y0 : y0 + self.crop, x0 : x0 + self.crop]
            y = target[y0 : y0 + self.crop, x0 : x0 + self.crop]
        if aug is not None:
            k = int(self.rng.integers(4))
            x, y = np.rot90(x, k), np.rot90(y, k)
            if self.rng.random() < 0.5:
                x, y = x[:, ::-1], y[:, ::-1]
            x = self._jitter(np.array(x, np.float32), aug)
        x = np.ascontiguousarray(np.moveaxis(x, -1, 0), np.float32)
        return x, np.ascontiguousarray(y, np.uint8)

    def _warped(
        self, image: np.ndarray, target: np.ndarray, cy: float, cx: float, aug: Augmentation
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sample a crop through a rotation + scale about the crop centre (one affine warp)."""
        angle = np.deg2rad(self.rng.uniform(-aug.max_rotation, aug.max_rotation))
        scale = np.exp(self.rng.uniform(*np.log(aug.scale_range)))
        cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
        matrix = np.array([[cos, -sin], [sin, cos]])
        half = (self.crop - 1) / 2
        offset = np.array([cy, cx]) - matrix @ np.array([half, half])
        shape = (self.crop, self.crop)
        channels = [
            ndi.affine_transform(image[..., c], matrix, offset, shape, order=1, mode="reflect")
            for c in range(image.shape[-1])
        ]
        warped_target = ndi.affine_transform(
            target, matrix, offset, shape, order=0, mode="constant", cval=IGNORE
        )
        return np.stack(channels, axis=-1), warped_target

    def _jitter(self, x: np.ndarray, aug: Augmentation) -> np.ndarray:
        # Python floats keep the arithmetic in float32 (NumPy scalars would promote to float64).
        gamma = float(np.exp(self.rng.uniform(*np.log(aug.gamma_range))))
        if gamma != 1.0:
            low, high = float(x.min()), float(x.max())
            if high > low:
                x -= low
                x *= 1.0 / (high - low)
                np.power(x, gamma, out=x)
                x *= high - low
                x += low
        gain = float(np.exp(self.rng.uniform(*np.log(aug.gain_range))))
        x *= gain
        x += float(self.rng.uniform(-aug.max_offset, aug.max_offset))
        return x

    def batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(B×C×crop×crop float32, B×crop×crop uint8)`` numpy batch."""
        samples = [self.sample() for _ in range(batch_size)]
        return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


def prepare_images(images: Sequence[np.ndarray], normalization: Normalization) -> list[np.ndarray]:
    """Normalize each ``YXC`` image with its own whole-image statistics (float32)."""
    return [normalization(np.asarray(im)) for im in images]


@dataclass(frozen=True)
class LabelledImage:
    """One image in memory: ``image`` raw ``YXC``, ``labels`` ``YX`` uint32 instance ids."""

    name: str
    image: np.ndarray
    labels: np.ndarray


def load_labelled_folder(images_dir, labels_dir) -> list[LabelledImage]:
    """Read every image / label pair of two folders (checked, see ``io.folders``).

    Raises
    ------
    ValueError
        Any bad pair (the message names the file), or images with different channel counts.
    """
    from ..io.folders import find_image_label_pairs, image_stem, read_training_pair

    items = []
    for image_path, label_path in find_image_label_pairs(images_dir, labels_dir):
        image, labels = read_training_pair(image_path, label_path)
        items.append(LabelledImage(image_stem(image_path), image, labels))
    channels = {item.image.shape[-1] for item in items}
    if len(channels) > 1:
        counts = {item.name: item.image.shape[-1] for item in items}
        raise ValueError(
            f"images in {str(images_dir)!r} have different channel counts {counts}: one model "
            "needs one channel count; convert them all to grayscale or all to RGB"
        )
    return items
