"""Training data: labelled images in memory and a fast random-crop sampler.

Targets come from :mod:`.targets`.

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
from .augment import Augmentation, intensity_jitter
from .targets import IGNORE, split_disconnected

#: The augmentation of a sampler made without one (frozen, so one shared default is safe).
DEFAULT_AUGMENTATION = Augmentation()


def _classes(target: np.ndarray) -> np.ndarray:
    """The class plane of a ``YX`` or ``YX×K`` target."""
    return target if target.ndim == 2 else target[..., 0]


def _coordinates(mask: np.ndarray, limit: int = 50_000) -> np.ndarray:
    """``N×2`` (y, x) coordinates of ``mask``, evenly subsampled to at most ~``limit``."""
    ys, xs = np.nonzero(mask)
    step = max(1, ys.size // limit)
    return np.stack([ys[::step], xs[::step]], axis=1)


class CropSampler:
    """Random ``crop × crop`` training samples from images held in memory.

    Parameters
    ----------
    images : sequence of np.ndarray
        ``YXC`` float32 images, already normalized.
    targets : sequence of np.ndarray
        ``YX`` uint8 targets (class ids, :data:`IGNORE` for ignored pixels), or ``YX×K``
        (class ids first; further maps such as the centre code are cropped, turned and warped
        with them, nearest-neighbour).
    crop : int
        Side of the square crops. Smaller images are reflect-padded, the padding ignored.
    foreground_bias : float
        Probability that a crop is centred on a random foreground pixel rather than anywhere.
    augmentation : Augmentation or None
        ``None`` disables every augmentation.
    seed : int
        Seed of the sampler's own random generator (same seed, same batches).
    focus : sequence of np.ndarray, optional
        ``YX`` bool masks, one per image, of pixels worth training on more often (e.g.
        :func:`contact_pixels`, where touching nuclei need a boundary).
    focus_bias : float
        Probability that a crop is centred on a focus pixel; the image is then chosen in
        proportion to its focus pixels. 0 (default) leaves the sampling as without ``focus``.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        targets: Sequence[np.ndarray],
        crop: int = 256,
        *,
        foreground_bias: float = 0.7,
        augmentation: Augmentation | None = DEFAULT_AUGMENTATION,
        seed: int = 0,
        focus: Sequence[np.ndarray] | None = None,
        focus_bias: float = 0.0,
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
        classes = [_classes(t) for t in self.targets]
        self.foreground = [_coordinates((t > 0) & (t != IGNORE)) for t in classes]
        self.valid = [_coordinates(t != IGNORE) for t in classes]
        areas = np.array([len(v) for v in self.valid], np.float64)
        if not areas.sum():
            raise ValueError("every target pixel is ignored: there is nothing to train on")
        self.weights = areas / areas.sum()
        self.focus_bias, self.focus, self.focus_weights = float(focus_bias), [], None
        if focus is not None and focus_bias > 0:
            self._set_focus(focus)

    def _set_focus(self, masks: Sequence[np.ndarray]) -> None:
        if len(masks) != len(self.images):
            raise ValueError(f"focus needs one mask per image, got {len(masks)}")
        # Focus pixels that the loss ignores are no use (padding is never focus).
        self.focus = [
            _coordinates(self._pad(np.asarray(m, bool), 0) & (_classes(t) != IGNORE))
            for m, t in zip(masks, self.targets)
        ]
        counts = np.array([len(f) for f in self.focus], np.float64)
        self.focus_weights = counts / counts.sum() if counts.sum() else None

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

    def _pick(self) -> tuple[int, float, float]:
        """An image index and a crop centre (focused with probability ``focus_bias``)."""
        if self.focus_weights is not None and self.rng.random() < self.focus_bias:
            index = int(self.rng.choice(len(self.images), p=self.focus_weights))
            return (index, *self._jittered(self.focus[index]))
        index = int(self.rng.choice(len(self.images), p=self.weights))
        fg = self.foreground[index]
        pool = fg if fg.size and self.rng.random() < self.foreground_bias else self.valid[index]
        return (index, *self._jittered(pool))

    def _jittered(self, pool: np.ndarray) -> tuple[float, float]:
        y, x = pool[self.rng.integers(len(pool))]
        jitter = self.rng.integers(-self.crop // 4, self.crop // 4 + 1, size=2)
        return float(y + jitter[0]), float(x + jitter[1])

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One augmented sample: ``(C×crop×crop float32 image, crop×crop uint8 target)``."""
        index, cy, cx = self._pick()
        image, target = self.images[index], self.targets[index]
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
            x = intensity_jitter(np.array(x, np.float32), aug, self.rng)
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
        planes = [target] if target.ndim == 2 else list(np.moveaxis(target, -1, 0))
        warped = [
            ndi.affine_transform(p, matrix, offset, shape, order=0, mode="constant", cval=IGNORE)
            for p in planes
        ]
        warped_target = warped[0] if target.ndim == 2 else np.stack(warped, axis=-1)
        return np.stack(channels, axis=-1), warped_target

    def batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(B×C×crop×crop float32, B×crop×crop[×K] uint8)`` numpy batch."""
        samples = [self.sample() for _ in range(batch_size)]
        return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


def prepare_images(images: Sequence[np.ndarray], normalization: Normalization) -> list[np.ndarray]:
    """Normalize each ``YXC`` image with its own whole-image statistics (float32)."""
    return [normalization(np.asarray(im)) for im in images]


@dataclass(frozen=True)
class LabelledImage:
    """One image in memory: ``image`` raw ``YXC``, ``labels`` ``YX`` uint32 instance ids.

    ``split_ids`` counts the file's ids that marked several separate objects (each piece is an
    object of its own in ``labels``, see :func:`split_disconnected`).
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    split_ids: int = 0


def load_labelled_folder(images_dir, labels_dir) -> list[LabelledImage]:
    """Read every image / label pair of two folders (checked, see ``io.folders``).

    An id painted on several separate objects is split into one object per piece
    (:func:`split_disconnected`; ``LabelledImage.split_ids`` says how many ids were).

    Raises
    ------
    ValueError
        Any bad pair (the message names the file), or images with different channel counts.
    """
    from ..io.folders import find_image_label_pairs, image_stem, read_training_pair

    items = []
    for image_path, label_path in find_image_label_pairs(images_dir, labels_dir):
        image, labels = read_training_pair(image_path, label_path)
        labels, split = split_disconnected(labels)
        items.append(LabelledImage(image_stem(image_path), image, labels, split))
    channels = {item.image.shape[-1] for item in items}
    if len(channels) > 1:
        counts = {item.name: item.image.shape[-1] for item in items}
        raise ValueError(
            f"images in {str(images_dir)!r} have different channel counts {counts}: one model "
            "needs one channel count; convert them all to grayscale or all to RGB"
        )
    return items
