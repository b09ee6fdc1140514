"""``slideseg pack``: copy a checkpoint as a compact release with model card notes."""

from __future__ import annotations

import argparse
import json
import sys

from ..io.errors import SlideSegError
from .common import positive_float

NAME = "pack"
HELP = "copy a checkpoint as a compact release (float16 weights, model card notes)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``slideseg pack``.

    Parameters
    ----------
    p
        The command's parser.
    """
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True)
    p.add_argument("--name")
    p.add_argument("--license", help="licence of the weights (e.g. of the training data)")
    p.add_argument("--data", help="what the model was trained on")
    p.add_argument("--description")
    p.add_argument(
        "--metrics", help="held-out test metrics (no choice made on them): JSON text or a file"
    )
    p.add_argument(
        "--validation-metrics",
        help="whole-image figures on the validation images: JSON text or a JSON file",
    )
    p.add_argument("--reproduce", help="the commands that reproduce training and evaluation")
    p.add_argument("--mpp", type=positive_float, help="microns per pixel of the training images")
    p.add_argument("--float32", action="store_true", help="keep float32 weights")


def metrics_arg(value: str, option: str = "--metrics") -> dict:
    """``pack --metrics`` (or ``option``): JSON object text or a JSON file holding one.

    Parameters
    ----------
    value
        The option's text: JSON, or the path of a JSON file.
    option
        The option, named in errors.

    Returns
    -------
    dict
        The metrics.

    Raises
    ------
    SlideSegError
        When the value is neither, is not valid JSON or not a JSON object.
    """
    from pathlib import Path

    text, where = value, option
    if not value.strip().startswith(("{", "[")):
        p = Path(value)
        if not p.is_file():
            raise SlideSegError(f"{value}: {option} is neither JSON text nor a JSON file")
        text, where = p.read_text(encoding="utf-8", errors="replace"), str(p)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise SlideSegError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise SlideSegError(
            f'{where}: {option} must be a JSON object such as {{"dice": 0.9}}, '
            f"not a {type(obj).__name__}"
        )
    return obj


def card_changes(args: argparse.Namespace, card_mpp: float | None) -> dict:
    """The model card fields the options change.

    Parameters
    ----------
    args
        The parsed command line.
    card_mpp
        The µm/px the card records (``--mpp`` overriding it is said on stderr).

    Returns
    -------
    dict
        ``{card field: value}``.
    """
    changes: dict = {
        k: v
        for k, v in (
            ("name", args.name),
            ("license", args.license),
            ("training_data", args.data),
            ("description", args.description),
            ("reproduce", args.reproduce),
        )
        if v
    }
    if args.metrics:
        changes["held_out_metrics"] = metrics_arg(args.metrics)
    if args.validation_metrics:
        changes["validation_metrics"] = metrics_arg(args.validation_metrics, "--validation-metrics")
    if args.mpp:
        if card_mpp and abs(card_mpp / args.mpp - 1) > 0.01:
            print(
                f"slideseg pack: overriding the trained resolution {card_mpp:g} µm/px "
                f"with --mpp {args.mpp:g}",
                file=sys.stderr,
            )
        changes["mpp"] = float(args.mpp)
    return changes


def run(args: argparse.Namespace) -> int:
    """Write the packed copy of the checkpoint to ``--out``.

    Parameters
    ----------
    args
        The parsed command line.

    Returns
    -------
    int
        The exit status (0).

    Raises
    ------
    SlideSegError
        When ``--out`` is the checkpoint itself.
    """
    from pathlib import Path

    from ..models import resolve_model
    from ..models.checkpoint import load_model, save_checkpoint

    source = resolve_model(args.checkpoint)
    if Path(args.out).resolve() == Path(source).resolve():
        raise SlideSegError(
            f"{args.out}: --out is the checkpoint being packed; pack writes a copy: "
            "give another folder"
        )
    model, card = load_model(source)
    changes = card_changes(args, card.mpp)
    out = save_checkpoint(model, args.out, card.replace(**changes), half=not args.float32)
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"wrote {out} ({size:.1f} MB, weights {'float32' if args.float32 else 'float16'})")
    return 0
