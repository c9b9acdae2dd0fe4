"""Mixed precision for every optimisation in the engine: one code path for training and finetuning.

On CUDA the forward pass autocasts to bfloat16 where the GPU has it, else to float16; float16
gradients underflow without loss scaling, so then a ``GradScaler`` scales the loss and unscales
the gradients before the optimizer steps (and skips a step whose gradients overflowed).
Elsewhere, or with ``enabled=False``, everything runs in float32 and the scaler is a no-op.
"""

from __future__ import annotations

import torch

from .evaluation import autocast


def needs_loss_scaling(device_type: str, enabled: bool, bf16_supported: bool) -> bool:
    """Whether autocast runs in float16 (CUDA without bfloat16), where losses must be scaled."""
    return bool(enabled and device_type == "cuda" and not bf16_supported)


class MixedPrecision:
    """Autocast and loss scaling of one run (``amp.scaler`` is kept in resume states).

    Parameters
    ----------
    device : torch.device
        The device the model trains on.
    enabled : bool
        ``False`` trains in float32 everywhere.
    """

    def __init__(self, device: torch.device, enabled: bool = True) -> None:
        self.device, self.enabled = device, bool(enabled)
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.loss_scaling = needs_loss_scaling(device.type, self.enabled, bf16)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.loss_scaling)

    def autocast(self):
        """Context manager of the forward pass (a no-op off CUDA)."""
        return autocast(self.device, self.enabled)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward pass of ``loss`` and one optimizer step (scaled where float16 needs it)."""
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
