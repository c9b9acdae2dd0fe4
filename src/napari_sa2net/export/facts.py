"""What an export knows about the model and the files it wrote, passed whole to the writers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FixedNormalization:
    """Whole-image percentiles of a reference image, as the spec's fixed ``scale_linear``.

    ``gain`` and ``offset`` hold one value per channel: ``x * gain + offset`` equals
    ``(x - low) / (high - low)``.
    """

    image: str
    low: tuple[float, ...]
    high: tuple[float, ...]

    @property
    def gain(self) -> tuple[float, ...]:
        return tuple(1.0 / max(h - lo, 1e-12) for lo, h in zip(self.low, self.high))

    @property
    def offset(self) -> tuple[float, ...]:
        return tuple(-lo * g for lo, g in zip(self.low, self.gain))


@dataclass(frozen=True)
class PackageFiles:
    """Files written into the export's scratch folder, to be packaged."""

    test_input: Path
    test_output: Path
    sample_input: Path
    sample_output: Path
    cover: Path
    state_dict: Path
    torchscript: Path
    architecture: Path
    readme: Path


@dataclass(frozen=True)
class PackageFacts:
    """The model and its test data, as the model card and the description need them.

    ``metadata`` is the checkpoint's (training / finetune / parent records); ``normalization``
    its ``Normalization.to_dict()``; ``origin`` the bundled model the weights are (or descend
    from), whose data notices and card travel with them, or ``None``.
    """

    name: str
    description: str
    source: str
    origin: str | None
    mode: str
    in_channels: int
    class_names: tuple[str, ...]
    channel_names: tuple[str, ...]
    min_size: int
    halo: int
    normalization: dict[str, Any]
    metadata: dict[str, Any]
    checkpoint: dict[str, Any]
    test_image: str
    test_size: int
    test_objects: int = 0
    fixed: FixedNormalization | None = None
    parent_id: str | None = None
    notices: tuple[Path, ...] = ()
    authors: tuple[str, ...] = field(default=())
