""":class:`FinetuneConfig`: how a model is fine-tuned on a pathologist's corrections."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import SlideSegError


class FinetuneError(SlideSegError, ValueError):
    """A fine-tuning option or input that cannot be used (the message names it)."""


@dataclass
class FinetuneConfig:
    """Options of :func:`~napari_slideseg.finetune.finetune_steps`.

    Parameters
    ----------
    epochs : int
        Epochs over the corrected and replay patches (a few).
    lr_factor : float
        The learning rate is the parent's training rate times this.
    batch_size : int or None
        Patches per batch; None: the parent's batch size.
    replay : float
        Replay patches from uncorrected areas (the prediction there taken as
        confirmed) per corrected patch, so the model does not forget.
    margin : int or None
        Pixels of the prediction's level added around each corrected region
        before patches are cut; None: half a patch's field of view.
    stride : float
        Patch stride over a corrected region as a fraction of the patch.
    min_tissue : float
        Smallest tissue fraction of a replay patch.
    max_steps : int or None
        At most this many optimiser steps per epoch; None: no limit.
    val_fraction : float
        Patches held out (drawn by patch) to choose the best epoch; 0: no
        validation (the best epoch is then the lowest training loss).
    augment : str or None
        Augmentation preset; None: the parent's.
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    threads : int or None
        Torch CPU threads.
    seed : int
        Seeds the replay windows and the training run.
    repredict : bool
        Predict the corrected regions (their bounding box) with the new model.

    Raises
    ------
    FinetuneError
        On construction, naming the first option that is invalid.
    """

    epochs: int = 3
    lr_factor: float = 0.1
    batch_size: int | None = None
    replay: float = 1.0
    margin: int | None = None
    stride: float = 0.5
    min_tissue: float = 0.3
    max_steps: int | None = None
    val_fraction: float = 0.25
    augment: str | None = None
    device: str = "auto"
    threads: int | None = None
    seed: int = 0
    repredict: bool = True

    def __post_init__(self) -> None:
        from .. import validate as v

        err = FinetuneError
        self.epochs = v.positive_int("epochs", self.epochs, error=err)
        self.lr_factor = v.in_range("lr_factor", self.lr_factor, 1e-6, 10.0, error=err)
        self.replay = v.in_range("replay", self.replay, 0.0, 100.0, error=err)
        self.stride = v.in_range("stride", self.stride, 0.05, 1.0, error=err)
        self.min_tissue = v.fraction("min_tissue", self.min_tissue, error=err)
        self.val_fraction = v.fraction("val_fraction", self.val_fraction, hi_open=True, error=err)
        self.seed = v.nonneg_int("seed", self.seed, error=err)
        for name in ("batch_size", "max_steps", "threads"):
            if getattr(self, name) is not None:
                setattr(self, name, v.positive_int(name, getattr(self, name), error=err))
        if self.margin is not None:
            self.margin = v.nonneg_int("margin", self.margin, error=err)
        if not isinstance(self.repredict, bool):
            raise FinetuneError(f"repredict must be True or False, not {self.repredict!r}")
        if not isinstance(self.device, str) or not self.device:
            raise FinetuneError(f"device must be a device name, not {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-able dict.

        Returns
        -------
        dict
        """
        return dataclasses.asdict(self)
