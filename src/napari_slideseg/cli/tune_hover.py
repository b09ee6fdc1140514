"""``slideseg tune-hover``: choose HoVer post-processing thresholds on annotated tiles."""

from __future__ import annotations

import argparse

from ..options import TTAMode, values
from .common import add_shared, checked, drive, positive_float

NAME = "tune-hover"
HELP = "choose HoVer post-processing thresholds on annotated tiles (best mean PQ)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``slideseg tune-hover``.

    Parameters
    ----------
    p
        The command's parser.
    """
    from ..validate import positive, positive_int

    p.add_argument("checkpoint", help="HoVer checkpoint folder")
    p.add_argument("--images", nargs="+", required=True, help="annotated tiles (not test images)")
    p.add_argument("--truths", nargs="+", required=True, help="their instance maps, same order")
    p.add_argument(
        "--zoom", type=positive_float, default=1.0, help="resample the images for the model"
    )
    p.add_argument(
        "--tta",
        choices=values(TTAMode),
        default=TTAMode.NONE.value,
        help="tune on test-time-augmented maps (use the mode you predict with)",
    )
    p.add_argument(
        "--mpp",
        type=checked(positive, "--mpp"),
        metavar="UM",
        help="µm/px of the tiles: zoom to the model's resolution, as predict does",
    )
    p.add_argument("--threads", type=checked(positive_int, "--threads"), help="torch CPU threads")
    p.add_argument("--write", action="store_true", help="store the best values in the card")
    p.add_argument("--report", help="CSV of every combination")
    add_shared(p, "--quiet")


def run(args: argparse.Namespace) -> int:
    """Try the combinations, print the best ones, and store the best with ``--write``.

    Parameters
    ----------
    args
        The parsed command line.

    Returns
    -------
    int
        The exit status (0).
    """
    from ..infer.tune import tune_hover_steps
    from ..models.checkpoint import update_card

    params, rows = drive(
        tune_hover_steps(
            args.checkpoint,
            args.images,
            args.truths,
            zoom=args.zoom,
            tta=args.tta,
            threads=args.threads,
            mpp=args.mpp,
        ),
        "tune",
        args.quiet,
    )
    if args.report:
        from pathlib import Path

        from ..metrics import write_csv

        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        write_csv(Path(args.report), rows)
    card_row = next((r for r in rows if r["card"]), None)
    print(f"{len(rows)} combinations on {len(args.images)} images (PQ = mean over images)")
    for r in rows[:5]:
        print("  " + ", ".join(f"{k} {v}" for k, v in r.items() if k != "card"))
    if card_row is not None:
        print(f"card's current values: PQ {card_row['pq_mean']:.4f}")
    print(f"best: PQ {rows[0]['pq_mean']:.4f} with {params.to_dict()}")
    if args.write:
        from ..models.checkpoint import read_card

        card = read_card(args.checkpoint).with_postproc(
            params.to_dict(),
            postproc_tuned_on=[str(p) for p in args.images],
            postproc_tuned_pq=rows[0]["pq_mean"],
            postproc_tuned_tta=args.tta,
        )
        update_card(args.checkpoint, hover=card.hover)
        print(f"wrote the parameters into {args.checkpoint}")
    return 0
