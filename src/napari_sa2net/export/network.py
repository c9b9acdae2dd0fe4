"""The network as other tools run it: SA2-Net returning class probabilities.

bioimage.io consumers (QuPath, deepImageJ, ilastik, bioimageio.core) show what a model outputs;
probabilities are what they can threshold, and a softmax baked into the weights needs no
postprocessing support from them. The state dict is the plain :class:`SA2Net` one (the activation
holds no parameters), so the same weights file loads here and there.
"""

from __future__ import annotations

import torch

from ..model.sa2net import SA2Net, SA2NetConfig


class SA2NetProbabilities(SA2Net):
    """SA2-Net whose ``forward`` returns probabilities ``N×K×H×W`` instead of logits.

    Softmax over the classes for the instance mode (``num_classes > 1``), sigmoid for the
    binary mode, and a sigmoid for the centre map of a model that has one (the last plane).
    ``forward`` takes an ``N×in_channels×H×W`` float tensor already normalized.

    Parameters
    ----------
    width : int
        Base width ``C`` of the configuration (16 for ``sa2net-small``).
    in_channels : int
        Input channels.
    num_classes : int
        Output classes (3 instance mode, 1 binary mode).
    name : str
        Configuration name, for display only.
    centre : bool
        The network has a centre-map plane after its classes.
    """

    def __init__(
        self,
        width: int,
        in_channels: int = 1,
        num_classes: int = 3,
        name: str = "sa2net",
        centre: bool = False,
    ) -> None:
        super().__init__(SA2NetConfig(name, width), in_channels, num_classes, centre=centre)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.probabilities(super().forward(x))


def probability_network(model: SA2Net) -> SA2NetProbabilities:
    """A :class:`SA2NetProbabilities` with ``model``'s weights, on the CPU, in eval mode."""
    net = SA2NetProbabilities(
        model.config.width, model.in_channels, model.num_classes, model.config.name,
        centre=model.centre,
    )  # fmt: skip
    net.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return net.eval()
