"""Segmentation models: smp factory, losses, safe self-describing checkpoints (no Qt)."""

from .bundled import bundled_models, resolve_model
from .checkpoint import CheckpointError, load_model, save_checkpoint
from .factory import ARCHITECTURES, ModelError, build_model

__all__ = [
    "ARCHITECTURES",
    "CheckpointError",
    "ModelError",
    "build_model",
    "bundled_models",
    "load_model",
    "resolve_model",
    "save_checkpoint",
]
