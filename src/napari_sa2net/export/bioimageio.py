"""The bioimage.io model description (format 0.5) of an export, built from bioimageio.spec objects.

Two weight formats hold the same network: ``pytorch_state_dict`` (the plain SA2-Net state dict,
plus the generated architecture file, its callable and keyword arguments) and ``torchscript``
(traced from it, what QuPath and deepImageJ run), whose ``parent`` is the state dict. Input and
output axes, the normalization, the halo and the napari-sa2net configuration (which
``model.package`` reads back) are stated in the description; everything the spec cannot say is in
the model card.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .architecture import CALLABLE, architecture_kwargs
from .card import CITATION
from .facts import PackageFacts, PackageFiles

#: Tensor ids of the package.
INPUT_ID, OUTPUT_ID = "input", "probabilities"

#: The arXiv DOI of the SA2-Net paper.
PAPER_DOI = "10.48550/arXiv.2309.16661"

#: Key under ``config`` holding what ``model.package`` needs to rebuild the model.
CONFIG_KEY = "napari_sa2net"


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file(path: Path) -> Any:
    from bioimageio.spec.model.v0_5 import FileDescr, Sha256

    return FileDescr(source=path, sha256=Sha256(sha256(path)))


def _preprocessing(facts: PackageFacts) -> list[Any]:
    """The normalization in the spec's terms: per-sample percentiles or fixed gain / offset."""
    from bioimageio.spec.model import v0_5 as spec

    if facts.fixed is None:
        kwargs = spec.ScaleRangeKwargs(
            axes=[spec.AxisId("y"), spec.AxisId("x")],
            min_percentile=facts.normalization["low_percentile"],
            max_percentile=facts.normalization["high_percentile"],
        )
        return [spec.ScaleRangeDescr(kwargs=kwargs)]
    gain, offset = list(facts.fixed.gain), list(facts.fixed.offset)
    if len(gain) == 1:
        linear = spec.ScaleLinearKwargs(gain=gain[0], offset=offset[0])
    else:
        linear = spec.ScaleLinearAlongAxisKwargs(
            axis=spec.AxisId("channel"), gain=gain, offset=offset
        )
    return [spec.ScaleLinearDescr(kwargs=linear)]


def _tensors(facts: PackageFacts, files: PackageFiles) -> tuple[Any, Any]:
    from bioimageio.spec.model import v0_5 as spec

    space = spec.ParameterizedSize(min=facts.min_size, step=16)
    inputs = spec.InputTensorDescr(
        id=spec.TensorId(INPUT_ID),
        description="raw intensities, normalized by the preprocessing",
        axes=[
            spec.BatchAxis(),
            spec.ChannelAxis(channel_names=list(facts.channel_names)),
            spec.SpaceInputAxis(id=spec.AxisId("y"), size=space),
            spec.SpaceInputAxis(id=spec.AxisId("x"), size=space),
        ],
        test_tensor=_file(files.test_input),
        sample_tensor=_file(files.sample_input),
        data=spec.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=_preprocessing(facts),
    )
    outputs = spec.OutputTensorDescr(
        id=spec.TensorId(OUTPUT_ID),
        description="class probabilities (softmax or sigmoid inside the weights)",
        axes=[
            spec.BatchAxis(),
            spec.ChannelAxis(channel_names=list(facts.class_names)),
            *(
                spec.SpaceOutputAxisWithHalo(
                    id=spec.AxisId(axis),
                    size=spec.SizeReference(
                        tensor_id=spec.TensorId(INPUT_ID), axis_id=spec.AxisId(axis)
                    ),
                    halo=facts.halo,
                )
                for axis in ("y", "x")
            ),
        ],
        test_tensor=_file(files.test_output),
        sample_tensor=_file(files.sample_output),
        data=spec.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
    )
    return inputs, outputs


def _weights(model: Any, files: PackageFiles) -> Any:
    from bioimageio.spec.model import v0_5 as spec

    version = spec.Version(torch.__version__.split("+")[0])
    architecture = spec.ArchitectureFromFileDescr(
        source=files.architecture,
        sha256=spec.Sha256(sha256(files.architecture)),
        callable=spec.Identifier(CALLABLE),
        kwargs=architecture_kwargs(model),
    )
    state_dict = spec.PytorchStateDictWeightsDescr(
        source=files.state_dict,
        sha256=spec.Sha256(sha256(files.state_dict)),
        architecture=architecture,
        pytorch_version=version,
    )
    torchscript = spec.TorchscriptWeightsDescr(
        source=files.torchscript,
        sha256=spec.Sha256(sha256(files.torchscript)),
        pytorch_version=version,
        parent="pytorch_state_dict",
        comment="traced from the pytorch_state_dict weights; y and x must be multiples of 16",
    )
    return spec.WeightsDescr(pytorch_state_dict=state_dict, torchscript=torchscript)


def _tags(facts: PackageFacts) -> list[str]:
    modality = "fluorescence-light-microscopy" if facts.in_channels == 1 else "other"
    task = "instance-segmentation" if facts.mode == "instance" else "semantic-segmentation"
    return [modality, "2d", "nuclei", "pytorch", "unet", task, "sa2net", "napari-sa2net"]


def _config(model: Any, facts: PackageFacts) -> Any:
    """``config``: what napari-sa2net reads back, and the spec's own training details."""
    from bioimageio.spec.model import v0_5 as spec

    ours = {
        "package_version": __version__,
        "config": dict(facts.checkpoint),
        "normalization": dict(facts.normalization),
        "metadata": dict(facts.metadata),
        "mode": facts.mode,
        "weights": "pytorch_state_dict",
    }
    params = sum(p.numel() for p in model.parameters())
    bioimageio = spec.BioimageioConfig(
        architecture_type="SA2-Net",
        architecture_description="U-Net encoder, scale-aware attention skips, AuA decoder",
        model_parameter_count=int(params),
        task=facts.mode + " segmentation",
    )
    return spec.Config(bioimageio=bioimageio, **{CONFIG_KEY: ours})


def model_description(model: Any, facts: PackageFacts, files: PackageFiles) -> Any:
    """The ``bioimageio.spec`` ``ModelDescr`` (format 0.5) of an export."""
    from bioimageio.spec.model import v0_5 as spec

    inputs, outputs = _tensors(facts, files)
    parent = spec.LinkedModel(id=spec.ModelId(facts.parent_id)) if facts.parent_id else None
    return spec.ModelDescr(
        name=facts.name,
        description=facts.description,
        authors=[spec.Author(name=name) for name in facts.authors],
        cite=[spec.CiteEntry(text=CITATION, doi=spec.Doi(PAPER_DOI))],
        license=spec.LicenseId("MIT"),
        documentation=_file(files.readme),
        covers=[_file(files.cover)],
        attachments=[_file(path) for path in facts.notices],
        tags=_tags(facts),
        version=spec.Version(__version__),
        inputs=[inputs],
        outputs=[outputs],
        weights=_weights(model, files),
        parent=parent,
        config=_config(model, facts),
    )


def save_package(description: Any, path: Path) -> Path:
    """Write ``description`` and its files as a bioimage.io zip at ``path`` (validated)."""
    from bioimageio.spec import save_bioimageio_package

    return Path(save_bioimageio_package(description, output_path=path))
