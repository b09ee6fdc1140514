"""Segmentation models: smp factory, losses, safe self-describing checkpoints (no Qt)."""

from .bundled import bundled_models, resolve_model
from .card import ModelCard, read_card
from .checkpoint import CheckpointError, load_model, save_checkpoint
from .factory import ARCHITECTURES, ModelError, build_model

__all__ = [
    "ARCHITECTURES",
    "CheckpointError",
    "ModelCard",
    "ModelError",
    "build_model",
    "bundled_models",
    "load_model",
    "read_card",
    "resolve_model",
    "save_checkpoint",
]
