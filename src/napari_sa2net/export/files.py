"""The files of a package: test tensors from a real image, cover, both weight formats, card.

Everything is written into a scratch folder; ``export.bioimageio`` describes the files and the
spec's packager copies them into the zip.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..model.checkpoints import plain_state_dict
from ..normalization import Normalization
from .architecture import FILE_NAME, architecture_source
from .card import cover_image, model_card
from .facts import PackageFacts, PackageFiles
from .network import probability_network


def busiest_crop(image: np.ndarray, size: int, step: int = 32) -> np.ndarray:
    """The ``size×size`` window of a ``YXC`` image with the most contrast.

    Windows on a ``step`` grid are ranked by the standard deviation of their mean-channel
    intensity: flat background scores low, nuclei (bright on fluorescence, dark on H&E) high,
    so the test tensors and the cover show objects rather than empty space. An image smaller
    than the window is a ``ValueError``.
    """
    height, width = image.shape[:2]
    if height < size or width < size:
        raise ValueError(
            f"the test image is {height}×{width} px, smaller than the {size}² test tensor; "
            "pass a larger test image or a smaller test size"
        )
    grey = image.astype(np.float64).mean(axis=-1)
    ys, xs = np.arange(0, height - size + 1, step), np.arange(0, width - size + 1, step)
    mean, mean_sq = (_window_sums(v, size, ys, xs) / size**2 for v in (grey, grey**2))
    y, x = np.unravel_index(np.argmax(mean_sq - mean**2), mean.shape)  # variance per window
    return image[ys[y] : ys[y] + size, xs[x] : xs[x] + size]


def _window_sums(values: np.ndarray, size: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sums of ``values`` over the ``size×size`` windows at ``ys × xs`` (summed-area table)."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    table[1:, 1:] = values.cumsum(0).cumsum(1)
    y0, x0 = ys[:, None], xs[None, :]
    return (
        table[y0 + size, x0 + size] - table[y0, x0 + size] - table[y0 + size, x0] + table[y0, x0]
    )


def normalized(crop: np.ndarray, facts: PackageFacts) -> np.ndarray:
    """``crop`` normalized as the package's preprocessing says (per sample, or fixed)."""
    if facts.fixed is not None:
        return Normalization.apply(crop, np.array(facts.fixed.low), np.array(facts.fixed.high))
    norm = Normalization.from_dict(facts.normalization)
    return norm(crop)


@torch.no_grad()
def test_tensors(model: torch.nn.Module, crop: np.ndarray, facts: PackageFacts):
    """``(input 1×C×S×S raw float32, output 1×K×S×S probabilities, normalized YXC crop)``."""
    net = probability_network(model)
    norm = normalized(crop, facts)
    x = torch.from_numpy(np.ascontiguousarray(norm.transpose(2, 0, 1)[None]))
    probs = net(x).numpy().astype(np.float32)
    raw = np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32)
    return raw, probs, norm


def trace(model: torch.nn.Module, example: np.ndarray) -> torch.jit.ScriptModule:
    """TorchScript of the probability network, traced on a normalized ``1×C×S×S`` example.

    Tracing records the graph for inputs whose sides are multiples of 16 (no padding branch);
    the package declares that step, and ``bioimageio test`` runs it at other sizes too.
    """
    net = probability_network(model)
    x = torch.from_numpy(example)
    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, but TorchScript is the format the
        # consumers (QuPath, deepImageJ) run; the tracer's warnings concern shape checks that
        # do not change the graph for sides that are multiples of 16.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, x, check_trace=False)
        with torch.no_grad():
            same = torch.equal(traced(x), net(x))
    if not same:
        raise RuntimeError("the traced TorchScript network differs from the eager one")
    return traced


def package_files(folder: Path) -> PackageFiles:
    """The names of a package's files inside the scratch ``folder``."""
    return PackageFiles(
        test_input=folder / "test_input.npy",
        test_output=folder / "test_output.npy",
        sample_input=folder / "sample_input.tif",
        sample_output=folder / "sample_output.tif",
        cover=folder / "cover.png",
        state_dict=folder / "weights.pt",
        torchscript=folder / "weights_torchscript.pt",
        architecture=folder / FILE_NAME,
        readme=folder / "README.md",
    )


def write_weights(model: torch.nn.Module, example: np.ndarray, files: PackageFiles) -> None:
    """The plain state dict, its TorchScript trace and the architecture source."""
    state = plain_state_dict(model)
    torch.save(state, files.state_dict)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript: see trace()
        torch.jit.save(trace(model, example), str(files.torchscript))
    files.architecture.write_text(architecture_source(), encoding="utf-8")


def write_files(
    model: torch.nn.Module, crop: np.ndarray, facts: PackageFacts, folder: Path
) -> tuple[PackageFacts, PackageFiles]:
    """Write every file of the package into ``folder``; returns the facts with the object count.

    ``crop`` is the raw ``YXC`` test image window.
    """
    from dataclasses import replace

    import imageio.v3 as iio
    import tifffile

    from ..inference.postprocess import probabilities_to_instances

    raw, probs, norm = test_tensors(model, crop, facts)
    labels = probabilities_to_instances(probs[0], facts.mode)
    facts = replace(facts, test_objects=int(labels.max(initial=0)))
    files = package_files(folder)
    np.save(files.test_input, raw)
    np.save(files.test_output, probs)
    # Sample tensors are for people: the raw crop in its own dtype, the probabilities as KYX.
    tifffile.imwrite(files.sample_input, np.ascontiguousarray(np.moveaxis(crop, -1, 0)))
    tifffile.imwrite(files.sample_output, probs[0], photometric="minisblack")
    iio.imwrite(files.cover, cover_image(norm, labels))
    write_weights(model, np.ascontiguousarray(norm.transpose(2, 0, 1)[None]), files)
    files.readme.write_text(model_card(facts), encoding="utf-8")
    return facts, files
