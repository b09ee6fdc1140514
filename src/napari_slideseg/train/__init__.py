"""Training as a generator of progress events, with a resumable run directory.

:func:`train` trains to the end; :func:`train_steps` is the same run as a
generator of :class:`~napari_slideseg.progress.Progress` events (what the
widget and the CLI drive); :func:`train_folds` / :func:`train_folds_steps`
run k-fold. The package's modules, bottom to top:

- :mod:`.checks`: :class:`TrainError`, the checks of the options and the choices they allow
- :mod:`.config`: :class:`TrainConfig`, what a resume may change
- :mod:`.rows`: manifest rows, their class map and µm/px
- :mod:`.data`: the train/validation split, class weights, datasets
- :mod:`.report`: validation Dice/IoU, ``metrics.csv``, ``curves.png``, ``done.json``
- :mod:`.start`: the checks before a run, torch, model, optimiser, schedule
- :mod:`.state`: checkpoints, optimiser state without pickle, resume
- :mod:`.loop`: the epoch loop (:func:`train_steps`, :func:`train`)
- :mod:`.folds`: k-fold runs
"""

from .checks import INPUT_NORMS, MONITORS, OPTIMIZERS, SCHEDULERS, TrainError
from .config import RESUME_MAY_CHANGE, TrainConfig, resume_changes
from .data import split_groups
from .folds import train_folds, train_folds_steps
from .loop import train, train_blocking, train_steps
from .report import TrainResult
from .rows import MANIFEST_COLUMNS, training_mpp

__all__ = [
    "INPUT_NORMS",
    "MANIFEST_COLUMNS",
    "MONITORS",
    "OPTIMIZERS",
    "RESUME_MAY_CHANGE",
    "SCHEDULERS",
    "TrainConfig",
    "TrainError",
    "TrainResult",
    "resume_changes",
    "split_groups",
    "train",
    "train_blocking",
    "train_folds",
    "train_folds_steps",
    "train_steps",
    "training_mpp",
]
