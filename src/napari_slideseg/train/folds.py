"""K-fold training: one run per fold, each in ``<out>/fold_<i>``."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

from ..progress import Progress, drain
from .config import TrainConfig
from .loop import train_steps
from .report import TrainResult


def train_folds_steps(
    config: TrainConfig, folds: int
) -> Generator[Progress, None, list[TrainResult]]:
    """Train ``folds`` runs (k-fold over slides or patches) into ``<out>/fold_<i>``.

    Parameters
    ----------
    config : TrainConfig
        The runs' config; each fold gets its own ``fold``, ``out`` and ``name``.
    folds : int
        The number of folds.

    Returns
    -------
    list of TrainResult
        The generator's return value: one result per fold.

    Raises
    ------
    TrainError
        As :func:`~.loop.train_steps`, for the first fold that cannot train.
    """
    results = []
    for k in range(folds):
        d = config.to_dict()
        d.update(
            fold=k,
            folds=folds,
            out=str(Path(config.out) / f"fold_{k}"),
            name=f"{config.name or Path(config.out).name}-fold{k}",
        )
        res = yield from train_steps(TrainConfig.from_dict(d))
        results.append(res)
    return results


def train_folds(config: TrainConfig, folds: int) -> list[TrainResult]:
    """Run :func:`train_folds_steps` to the end.

    Parameters
    ----------
    config : TrainConfig
        The runs' config.
    folds : int
        The number of folds.

    Returns
    -------
    list of TrainResult
        One result per fold.

    Raises
    ------
    TrainError
        As :func:`train_folds_steps`.
    """
    return drain(train_folds_steps(config, folds))
