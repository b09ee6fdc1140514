"""``slideseg finetune``: fine-tune a prediction's model on the corrections saved beside it."""

from __future__ import annotations

import argparse

from .common import add_shared, checked, drive

NAME = "finetune"
HELP = "fine-tune the model of a prediction on the corrections painted on it in napari"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``slideseg finetune``.

    Parameters
    ----------
    p
        The command's parser.
    """
    from ..validate import fraction, in_range, nonneg_int, positive_int

    p.add_argument("prediction", help="prediction .zarr folder with saved corrections")
    p.add_argument("--out", required=True, help="new folder for the fine-tuned model and its run")
    p.add_argument(
        "--model",
        help="checkpoint to fine-tune (default: the one the prediction was made with)",
    )
    p.add_argument(
        "--epochs", type=checked(positive_int, "--epochs"), default=3, help="epochs (default 3)"
    )
    p.add_argument(
        "--lr-factor",
        type=checked(in_range, "--lr-factor", 1e-6, 10.0),
        default=0.1,
        help="learning rate as a share of the model's own training rate (default 0.1)",
    )
    p.add_argument(
        "--replay",
        type=checked(in_range, "--replay", 0.0, 100.0),
        default=1.0,
        help="replay patches of uncorrected areas per corrected patch (default 1)",
    )
    p.add_argument(
        "--margin",
        type=checked(nonneg_int, "--margin"),
        help="pixels around each corrected region (default: half a patch)",
    )
    p.add_argument(
        "--val-fraction",
        type=checked(fraction, "--val-fraction", hi_open=True),
        default=0.25,
        help="patches held out to pick the best epoch (default 0.25)",
    )
    p.add_argument("--batch-size", type=checked(positive_int, "--batch-size"))
    p.add_argument("--max-steps", type=checked(positive_int, "--max-steps"))
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=checked(positive_int, "--threads"), help="torch CPU threads")
    p.add_argument("--seed", type=checked(nonneg_int, "--seed"), default=0)
    p.add_argument(
        "--view",
        nargs=4,
        type=checked(nonneg_int, "--view"),
        metavar=("Y0", "X0", "Y1", "X1"),
        help="also predict this region (pixels of the prediction's level) with the new model",
    )
    p.add_argument(
        "--no-repredict",
        action="store_true",
        help="do not predict the corrected regions with the new model",
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

    config = FinetuneConfig(
        epochs=args.epochs,
        lr_factor=args.lr_factor,
        replay=args.replay,
        margin=args.margin,
        val_fraction=args.val_fraction,
        batch_size=args.batch_size,
        max_steps=args.max_steps,
        device=args.device,
        threads=args.threads,
        seed=args.seed,
        repredict=not args.no_repredict,
    )
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
