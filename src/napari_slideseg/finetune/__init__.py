"""Fine-tuning a model on a pathologist's corrections (the human-in-the-loop cycle).

A prediction is corrected in napari (painted, erased, filled); the corrected
labels and the regions that changed go to :func:`finetune_steps`, which cuts
patches around the regions plus a replay sample of uncorrected areas,
trains the model the prediction came from for a few epochs at a lower rate
(a new version; the parent is never changed) and re-predicts the corrected
regions with it.

- :mod:`.config`: :class:`FinetuneConfig` and :class:`FinetuneError`;
- :mod:`.patches`: the corrected and replay patch sets;
- :mod:`.run`: :func:`finetune_steps`, :class:`FinetuneResult`;
- :mod:`.prediction`: :func:`finetune_prediction_steps` (a prediction and its saved corrections).
"""

from __future__ import annotations

from .config import FinetuneConfig, FinetuneError
from .patches import cut_patches_steps, grown_regions, replay_cells
from .prediction import finetune_prediction_steps, parent_model
from .run import RECORD, FinetuneResult, finetune_steps, train_config

__all__ = [
    "RECORD",
    "FinetuneConfig",
    "FinetuneError",
    "FinetuneResult",
    "cut_patches_steps",
    "finetune_prediction_steps",
    "finetune_steps",
    "grown_regions",
    "parent_model",
    "replay_cells",
    "train_config",
]
