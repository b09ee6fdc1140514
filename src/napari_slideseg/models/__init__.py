"""Segmentation models: smp factory, losses, safe self-describing checkpoints (no Qt)."""

from .checkpoint import CheckpointError, load_model, save_checkpoint
from .factory import ARCHITECTURES, ModelError, build_model

__all__ = [
    "ARCHITECTURES",
    "CheckpointError",
    "ModelError",
    "build_model",
    "load_model",
    "save_checkpoint",
]
