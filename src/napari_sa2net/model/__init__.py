"""SA2-Net in plain PyTorch: blocks, named configurations, checkpoints, devices, bundled models."""

from __future__ import annotations

from .aua import AdaptiveUpAttention
from .bundled import BUNDLED_DIR, DEFAULT_MODEL, bundled_model_path, list_bundled_models
from .checkpoints import (
    load_model,
    load_state_dict_checked,
    model_hash,
    read_checkpoint,
    resolve_checkpoint_path,
    save_checkpoint,
)
from .devices import available_devices, resolve_device, use_fast_layout
from .reach import RECEPTIVE_FIELD_RADIUS, measure_reach, suggested_halo
from .sa2 import ScaleAwareAttention
from .sa2net import CONFIGS, SA2Net, SA2NetConfig, create_model

__all__ = [
    "BUNDLED_DIR",
    "CONFIGS",
    "DEFAULT_MODEL",
    "RECEPTIVE_FIELD_RADIUS",
    "AdaptiveUpAttention",
    "SA2Net",
    "SA2NetConfig",
    "ScaleAwareAttention",
    "available_devices",
    "bundled_model_path",
    "create_model",
    "list_bundled_models",
    "load_model",
    "load_state_dict_checked",
    "measure_reach",
    "model_hash",
    "read_checkpoint",
    "resolve_checkpoint_path",
    "resolve_device",
    "save_checkpoint",
    "suggested_halo",
    "use_fast_layout",
]
