"""``slideseg finetune``: fine-tune a prediction's model on the corrections saved beside it."""

from __future__ import annotations

import argparse

from .common import add_shared, checked, drive
from .fields import Flag, add_config_options, config_kwargs

NAME = "finetune"
HELP = "fine-tune the model of a prediction on the corrections painted on it in napari"


def finetune_flags() -> dict[str, Flag]:
    """How the fields of :class:`~napari_slideseg.finetune.FinetuneConfig` are given.

    The help of each is ``FinetuneConfig``'s docstring; numbers are checked
    as the option is read, so a wrong value names its flag.

    Returns
    -------
    dict
        ``{field name: Flag}`` for the fields whose option is not the generic one.
    """
    from ..options import AugmentPreset
    from ..validate import fraction, in_range, nonneg_int, positive_int

    def count(flag: str, validator=positive_int) -> Flag:
        return Flag(type=checked(validator, flag))

    return {
        "epochs": count("--epochs"),
        "lr_factor": Flag(type=checked(in_range, "--lr-factor", 1e-6, 10.0)),
        "batch_size": count("--batch-size"),
        "replay": Flag(type=checked(in_range, "--replay", 0.0, 100.0)),
        "margin": count("--margin", nonneg_int),
        "stride": Flag(type=checked(in_range, "--stride", 0.05, 1.0)),
        "min_tissue": Flag(type=checked(fraction, "--min-tissue")),
        "max_steps": count("--max-steps"),
        "val_fraction": Flag(type=checked(fraction, "--val-fraction", hi_open=True)),
        "augment": Flag(choices=AugmentPreset),
        "threads": count("--threads"),
        "seed": count("--seed", nonneg_int),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``slideseg finetune``.

    Parameters
    ----------
    p
        The command's parser.
    """
    from ..finetune import FinetuneConfig
    from ..validate import nonneg_int

    p.add_argument("prediction", help="prediction .zarr folder with saved corrections")
    p.add_argument("--out", required=True, help="new folder for the fine-tuned model and its run")
    p.add_argument(
        "--model",
        help="checkpoint to fine-tune (default: the one the prediction was made with)",
    )
    add_config_options(p, FinetuneConfig, finetune_flags())
    p.add_argument(
        "--view",
        nargs=4,
        type=checked(nonneg_int, "--view"),
        metavar=("Y0", "X0", "Y1", "X1"),
        help="also predict this region (pixels of the prediction's level) with the new model",
    )
    add_shared(p, "--quiet")


def run(args: argparse.Namespace) -> int:
    """Fine-tune, print the new checkpoint and the re-prediction.

    Parameters
    ----------
    args
        The parsed command line.

    Returns
    -------
    int
        The exit status (0).
    """
    from ..finetune import FinetuneConfig, finetune_prediction_steps

    config = FinetuneConfig(**config_kwargs(args, FinetuneConfig, finetune_flags()))
    res = drive(
        finetune_prediction_steps(
            args.prediction, args.out, model=args.model, config=config, view=args.view
        ),
        desc="finetune",
        quiet=args.quiet,
    )
    n = res.patches
    print(
        f"fine-tuned {res.parent['name'] or res.parent['path']} on {n['corrected']} corrected "
        f"and {n['replay']} replay patches: {res.checkpoint}"
    )
    if res.repredicted:
        print(f"corrected regions predicted again: {res.repredicted}")
    if res.view:
        print(f"--view predicted: {res.view}")
    return 0
