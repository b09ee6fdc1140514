"""The task interface: what the engine asks of a model kind."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ...models.card import ModelCard
from ..config import InferConfig

Core = tuple[int, int, int, int]


class ArraySpec(NamedTuple):
    """One array of a prediction folder: name, dtype, channels (None: 2-D), pyramid group."""

    name: str
    dtype: Any
    channels: int | None = None
    pyramid: str | None = None


class Output(NamedTuple):
    """Where block results are written: the zarr group, its folder, the pyramid factors."""

    root: Any
    path: Path
    factors: tuple[int, ...] = ()


def unturn(p: Any, k: int, flip: bool) -> Any:
    """Bring ``p`` (N, C, H, W) predicted on ``flip(rot90(x, k))`` back to x's pixel frame.

    Parameters
    ----------
    p : torch.Tensor
        Predictions on the transformed input.
    k : int
        Quarter turns ``torch.rot90(x, k, (2, 3))`` applied to the input.
    flip : bool
        Whether the turned input was then mirrored along x.

    Returns
    -------
    torch.Tensor
        ``p`` mirrored and turned back.
    """
    import torch

    if flip:
        p = torch.flip(p, (3,))
    return torch.rot90(p, -k, (2, 3))


class Task(ABC):
    """The interface: what the engine asks of a model kind (see the module docstring)."""

    kind: ClassVar[str] = ""
    #: Whether a block's result is written by the driver (True) or where it was computed.
    write_on_driver: ClassVar[bool] = False
    #: Whether :meth:`compute` is worth a process of its own while the model runs on.
    heavy_compute: ClassVar[bool] = False

    @classmethod
    def for_slide(cls, slide: Any, card: ModelCard, config: InferConfig, n_blocks: int) -> Task:
        """The task for ``card`` on ``slide`` (a class without settings ignores them)."""
        return cls()

    @staticmethod
    @abstractmethod
    def probs(out: Any, card: ModelCard) -> Any:
        """Per-pixel outputs ``(N, channels, H, W)`` from the model's raw ``out``."""

    @staticmethod
    def undo_tta(p: Any, k: int, flip: bool) -> Any:
        """``p`` made on ``flip(rot90(x, k))`` in x's frame, pixels and channel meaning."""
        return unturn(p, k, flip)

    @staticmethod
    def margin(config: InferConfig) -> int:
        """Level pixels predicted around each block core (what :meth:`extent` adds)."""
        return 0

    def extent(self, core: Core, shape: tuple[int, ...], config: InferConfig) -> Core:
        """The pixels to predict for the block ``core``: it plus :meth:`margin`, inside the level."""
        H, W = shape[:2]
        m = self.margin(config)
        y0, x0, y1, x1 = core
        return (max(0, y0 - m), max(0, x0 - m), min(H, y1 + m), min(W, x1 + m))

    @abstractmethod
    def compute(
        self, maps: np.ndarray, ext: Core, core: Core, config: InferConfig, index: int
    ) -> dict[str, Any]:
        """The block's result from its predicted ``maps`` over ``ext`` (pure)."""

    @abstractmethod
    def arrays(self, channels: int, save_probs: bool) -> list[ArraySpec]:
        """The arrays a prediction folder of this task holds (besides ``done``)."""

    @abstractmethod
    def write(self, dest: Output, index: int, res: dict[str, Any], config: InferConfig) -> None:
        """Write block ``index``'s result ``res`` into the prediction ``dest``."""

    def finish(self, out: Path, meta: dict[str, Any]) -> None:  # noqa: B027 (optional step)
        """After the last block: complete the output and add to its attributes ``meta``."""
