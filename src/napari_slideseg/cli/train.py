"""``slideseg train``: train a model from patch manifests into a run folder."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from .common import add_shared, checked, class_weights, drive, positive_ints
from .fields import Flag, add_config_options, config_kwargs

NAME = "train"
HELP = "train a segmentation model from patch manifests into a run folder"
DESCRIPTION = "Train an smp model on patch folders / manifest.csv files made by `slideseg patch`."

log = logging.getLogger(__name__)


def _flags_model() -> dict[str, Flag]:
    """Flags of the model and loss fields of ``TrainConfig``."""
    from ..options import HoverLossTerm, InputNorm, ModelKind, NormLayer, values
    from ..validate import int_in_range, nonneg
    from .structured import named_mapping_type

    return {
        "encoder_weights": Flag(
            metavar="PATH",
            note="torchvision, smp or timm key layout; never downloaded. Its sidecar JSON "
            "may state the input normalisation",
        ),
        "input_norm": Flag(choices=InputNorm),
        "class_weights": Flag(type=class_weights, note="comma-separated, or auto"),
        "kind": Flag(choices=ModelKind, note="hover trains on slideseg patch --instances"),
        "norm": Flag(choices=NormLayer, note="group: few slides, varied staining"),
        "decoder_channels": Flag(
            type=positive_ints("--decoder-channels"),
            note="deepest first, e.g. 128,64,32,16,16 (a smaller model)",
        ),
        "encoder_depth": Flag(
            type=checked(int_in_range, "--encoder-depth", 3, 5),
            note="3-5; fewer: a smaller model",
        ),
        "hover_weights": Flag(
            type=named_mapping_type(
                "--hover-weights",
                "HoVer loss terms",
                lambda: values(HoverLossTerm),
                nonneg,
                label="hover weights",
            ),
            metavar="WEIGHTS",
            note="e.g. hv_mse=2,nc_ce=0.5 or a JSON object; terms not given keep their defaults",
        ),
    }


def _flags_data() -> dict[str, Flag]:
    """Flags of the data and split fields of ``TrainConfig``."""
    from ..options import SplitBy
    from ..validate import fraction, int_at_least, nonneg_int

    return {
        "manifests": Flag(positional=True, nargs="+"),
        "out": Flag(required=True),
        "val_manifests": Flag(
            flags=("--val", "--val-manifests"),
            type=str,
            nargs="*",
            default=None,
            to_field=lambda v: [str(m) for m in v or []],
        ),
        "val_fraction": Flag(type=checked(fraction, "--val-fraction", hi_open=True)),
        "split_by": Flag(choices=SplitBy),
        "fold": Flag(type=checked(nonneg_int, "--fold"), note="train only this fold of --folds"),
        "folds": Flag(
            type=checked(int_at_least, "--folds", 2),
            default=None,
            note="given: train K folds into OUT/fold_<k> (or with --fold, one fold)",
            to_field=lambda v: v or 5,
        ),
        "num_workers": Flag(
            flags=("--workers", "--num-workers"), type=checked(nonneg_int, "--workers")
        ),
    }


def _flags_schedule() -> dict[str, Flag]:
    """Flags of the optimisation and run fields of ``TrainConfig``."""
    from ..options import AugmentPreset, Monitor, Optimizer, Scheduler
    from ..validate import int_in_range, nonneg, nonneg_int, positive, positive_int

    def count(flag: str) -> Flag:
        return Flag(type=checked(positive_int, flag))

    return {
        "optimizer": Flag(choices=Optimizer),
        "lr": Flag(type=checked(positive, "--lr")),
        "weight_decay": Flag(type=checked(nonneg, "--weight-decay")),
        "scheduler": Flag(choices=Scheduler),
        "epochs": count("--epochs"),
        "batch_size": count("--batch-size"),
        "augment": Flag(choices=AugmentPreset),
        "scale_range": Flag(
            nargs=2,
            type=checked(positive, "--scale-range"),
            metavar=("LO", "HI"),
            note="e.g. 0.5 2 (structures of varying size)",
        ),
        "patience": count("--patience"),
        "monitor": Flag(choices=Monitor),
        "amp": Flag(note="--no-amp: off"),
        "seed": Flag(type=checked(int_in_range, "--seed", 0, 2**31 - 1)),
        "threads": count("--threads"),
        "max_steps": count("--max-steps"),
        "bn_recalibrate": Flag(type=checked(nonneg_int, "--bn-recalibrate")),
    }


def train_flags() -> dict[str, Flag]:
    """How the fields of :class:`~napari_slideseg.train.TrainConfig` are given.

    The help of each is ``TrainConfig``'s docstring; the notes say what the
    command line adds.

    Returns
    -------
    dict
        ``{field name: Flag}`` for the fields whose option is not the generic one.
    """
    return {**_flags_data(), **_flags_model(), **_flags_schedule()}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``slideseg train`` (one per ``TrainConfig`` field, and more).

    Parameters
    ----------
    p
        The command's parser.
    """
    from ..train import TrainConfig

    add_config_options(p, TrainConfig, train_flags())
    p.add_argument(
        "--resume", action="store_true", help="continue OUT/last after a crash or cancel"
    )
    add_shared(p, "--quiet")


def resume_config(args: argparse.Namespace, cfg: Any) -> Any:
    """On ``train --resume``: the run's saved settings, with only the options given now.

    An option left at its default takes the run's value; one given with another value
    than the run's is kept, so :func:`~napari_slideseg.train.train` refuses it by name.

    Parameters
    ----------
    args
        The parsed command line.
    cfg
        The :class:`~napari_slideseg.train.TrainConfig` the command line gives.

    Returns
    -------
    TrainConfig
        ``cfg`` with the run's own values where no option was given.
    """
    import dataclasses
    from pathlib import Path

    from ..train import TrainConfig, resume_changes

    saved_path = Path(cfg.out) / "config.json"
    if not saved_path.exists():
        log.debug("%s: no saved config; resuming with the options given", saved_path)
        return cfg
    saved = TrainConfig.load_json(saved_path)
    defaults = argparse.ArgumentParser()
    add_arguments(defaults)
    flags = train_flags()
    keep = {}
    for change in resume_changes(saved, cfg):
        name = change.split(" ", 1)[0]
        dest = flags[name].dest if name in flags and flags[name].dest else name
        if getattr(args, dest, None) == defaults.get_default(dest):
            keep[name] = getattr(saved, name)  # not given now: the run's own value
    return dataclasses.replace(cfg, **keep) if keep else cfg


def run(args: argparse.Namespace) -> int:
    """Train (one run, or every fold of ``--folds``) and print each run's summary.

    Parameters
    ----------
    args
        The parsed command line.

    Returns
    -------
    int
        The exit status (0).
    """
    from ..train import TrainConfig, train_folds_steps, train_steps

    cfg = TrainConfig(**config_kwargs(args, TrainConfig, train_flags()))
    if args.resume:
        cfg = resume_config(args, cfg)
    if args.folds and args.fold is None:
        results = drive(train_folds_steps(cfg, args.folds), quiet=args.quiet)
    else:
        results = [drive(train_steps(cfg, resume=args.resume), quiet=args.quiet)]
    for res in results:
        last = res.history[-1] if res.history else {}
        print(
            f"{res.run_dir}: {len(res.history)} epochs, best epoch {res.best_epoch} "
            f"({res.monitor} {res.best_value:.4f}); last mean Dice {last.get('mean_dice', float('nan')):.4f}"
            + (" (stopped early)" if res.stopped_early else "")
        )
    return 0
