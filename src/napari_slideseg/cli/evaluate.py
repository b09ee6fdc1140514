"""``slideseg evaluate``: per-class Dice and IoU (or nucleus AJI/PQ) against the truth."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ..io.errors import SlideSegError
from .common import add_shared, needs, stem

NAME = "evaluate"
HELP = "per-class Dice and IoU of a prediction against the truth"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``slideseg evaluate``.

    Parameters
    ----------
    p
        The command's parser.
    """
    p.add_argument("pred", help="prediction: zarr, mask PNG/TIFF or RLE CSV")
    p.add_argument("truth", help="ground truth in any mask format")
    p.add_argument("--classmap", help="preset or class map JSON")
    p.add_argument("--report", help="CSV report path")
    add_shared(p, "--min-class-share", "--partial")
    p.add_argument(
        "--instances",
        action="store_true",
        help="nucleus instances: AJI, AJI+, DQ/SQ/PQ (PRED: HoVer prediction or instance map)",
    )
    p.add_argument("--truth-types", help="with --instances: true per-pixel type map (per-type PQ)")
    p.add_argument(
        "--pred-types", help="with --instances: predicted type map (if PRED has no table)"
    )


def region_crop(pred_path: str, pred: Any, truth: Any) -> Callable[[Any], Any]:
    """Crop to the predicted region when the prediction covers only part of the slide.

    Parameters
    ----------
    pred_path
        The prediction (a zarr records the region it predicted).
    pred, truth
        The prediction's and the truth's label images.

    Returns
    -------
    Callable
        ``crop(array)``: the region of an array (the whole array when there is none).
    """
    from ..io.masks import predicted_box

    box = predicted_box(pred_path)
    if box is None or tuple(pred.shape[:2]) != tuple(truth.shape[:2]):
        return lambda a: a  # whole slide, or shapes that metrics will refuse by name
    y0, x0, y1, x1 = box
    print(
        f"{pred_path}: predicted only the region y {y0}-{y1}, x {x0}-{x1} "
        f"({y1 - y0} x {x1 - x0} px): scored inside it",
        file=sys.stderr,
    )
    return lambda a: a[y0:y1, x0:x1]


def _predicted_types(args: argparse.Namespace) -> Any:
    """``{id: type}`` of a HoVer prediction's table, or the ``--pred-types`` map."""
    from pathlib import Path

    from ..io.masks import read_instance_map

    if Path(args.pred).is_dir() and (Path(args.pred) / "instances.csv").exists():
        from ..infer.hover import read_instance_table

        tab = read_instance_table(args.pred, partial=args.partial)
        return dict(zip(tab["id"].tolist(), tab["type"].tolist(), strict=True))
    if args.pred_types:
        return read_instance_map(args.pred_types)
    from ..validate import OptionError

    raise OptionError(
        "--truth-types needs predicted types (a HoVer prediction folder, or --pred-types TYPEMAP)"
    )


def evaluate_instances(args: argparse.Namespace) -> int:
    """``evaluate --instances``: AJI, AJI+, DQ/SQ/PQ (per type with ``--truth-types``).

    Parameters
    ----------
    args
        The parsed command line.

    Returns
    -------
    int
        The exit status (0).
    """
    from ..io.masks import read_instance_map, resolve_classmap
    from ..metrics import instance_report

    pred = read_instance_map(args.pred, partial=args.partial)
    truth = read_instance_map(args.truth)
    crop = region_crop(args.pred, pred, truth)
    pred, truth = crop(pred), crop(truth)
    types = None
    names = None
    if args.truth_types:
        truth_types = read_instance_map(args.truth_types)
        pred_types = _predicted_types(args)
        if not isinstance(pred_types, dict):
            pred_types = crop(pred_types)
        types = [(crop(truth_types), pred_types)]
        given = resolve_classmap(args.classmap) if args.classmap else None
        if given is not None:
            names = list(given.names)
    rows = instance_report(
        [(stem(args.pred), truth, pred)], types=types, type_names=names, report=args.report
    )
    for row in rows:
        print(
            ", ".join(f"{k}={round(v, 4) if isinstance(v, float) else v}" for k, v in row.items())
        )
    return 0


def _same_classes(a: Any, b: Any) -> bool:
    """Whether two class maps have the same names and colours (in the same order)."""
    return bool((a.names, a.colors) == (b.names, b.colors))


def run(args: argparse.Namespace) -> int:
    """Score the prediction against the truth and print (and write) the table.

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
        When ``--classmap`` contradicts the classes the prediction was made with.
    """
    from ..io.export import label_max
    from ..io.masks import read_labels
    from ..metrics import evaluate

    if args.instances:
        return evaluate_instances(args)
    needs(args, "--instances", "--truth-types", "--pred-types")

    share = args.min_class_share
    pred, pcm, _ = read_labels(args.pred, partial=args.partial, min_share=share)
    if args.classmap:
        from ..io.masks import resolve_classmap

        given = resolve_classmap(args.classmap)
        if given is not None and pcm is not None and not _same_classes(pcm, given):
            raise SlideSegError(
                f"{args.pred}: was predicted with the classes {', '.join(pcm.names)}, but "
                f"--classmap {args.classmap} gives {', '.join(given.names)} (or other colours); "
                "the class numbers would not match: drop --classmap or give the prediction's"
            )
        pcm = given
    truth, tcm, _ = read_labels(args.truth, classmap=args.classmap, min_share=share)
    crop = region_crop(args.pred, pred, truth)
    pred, truth = crop(pred), crop(truth)
    cm = pcm or tcm
    n = max(cm.n_classes if cm else 0, label_max(pred) + 1, label_max(truth) + 1)
    names = (
        list(cm.names) if cm is not None and cm.n_classes >= n else [f"class_{i}" for i in range(n)]
    )
    rows = evaluate([(stem(args.pred), pred, truth)], names, report=args.report)
    for row in rows:
        print(", ".join(f"{k}={v}" for k, v in row.items()))
    return 0
