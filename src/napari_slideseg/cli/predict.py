"""``slideseg predict``: tiled inference of one or more checkpoints over a slide."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any, cast

from .common import add_shared, checked, drive, drive_open, zoom_value
from .fields import Flag, add_config_options, config_kwargs

NAME = "predict"
HELP = "tiled inference of one or more checkpoints over a slide into a zarr"

log = logging.getLogger(__name__)


def hover_param_names() -> list[str]:
    """The names ``--hover`` accepts: the fields of ``HoverParams``.

    Returns
    -------
    list of str
        The field names, in their order.
    """
    import dataclasses

    from ..instances.postproc import HoverParams

    return [f.name for f in dataclasses.fields(HoverParams)]


def infer_flags() -> dict[str, Flag]:
    """How the fields of :class:`~napari_slideseg.infer.InferConfig` are given.

    The help of each is ``InferConfig``'s docstring; the notes say what the
    command line adds (its own defaults, how to write a polygon or a mapping).

    Returns
    -------
    dict
        ``{field name: Flag}`` for the fields whose option is not the generic one.
    """
    from ..options import BlendWindow, TTAMode
    from ..validate import fraction, int_at_least, nonneg_int, positive_int
    from .structured import named_mapping_type

    def count(flag: str, validator: Callable = positive_int, **kw: Any) -> Flag:
        return Flag(type=checked(validator, flag), **kw)

    return {
        "level": count("--level", nonneg_int),
        "tile": Flag(
            type=checked(int_at_least, "--tile", 16),
            default=None,
            note="default: the model's patch size",
        ),
        "overlap": count(
            "--overlap", nonneg_int, default=None, note="default: 128, at most half the tile"
        ),
        "batch_size": count("--batch-size"),
        "block": count("--block"),
        "halo": count("--halo", nonneg_int),
        "window": Flag(choices=BlendWindow),
        "tta": Flag(choices=TTAMode),
        "amp": Flag(note="--no-amp: off"),
        "save_probs": Flag(flags=("--probs", "--save-probs")),
        "region": count("--region", nonneg_int, metavar=("Y0", "X0", "Y1", "X1")),
        "min_tissue": Flag(type=checked(fraction, "--min-tissue")),
        "threads": count("--threads"),
        "roi": Flag(metavar="POINTS", note="y,x,y,x,... or JSON [[y, x], ...]"),
        "instance_halo": count("--instance-halo", nonneg_int),
        "hover": Flag(
            type=named_mapping_type(
                "--hover",
                "HoVer post-processing parameters",
                hover_param_names,
                label="hover parameters",
            ),
            metavar="PARAMS",
            note="e.g. np_threshold=0.6,min_size=8 or a JSON object",
        ),
        "zoom": Flag(type=zoom_value),
        "workers": count("--workers", nonneg_int),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``slideseg predict`` (one per ``InferConfig`` field, and more).

    Parameters
    ----------
    p
        The command's parser.
    """
    from ..infer import InferConfig

    p.add_argument("slide")
    p.add_argument(
        "--model",
        action="append",
        required=True,
        help="checkpoint folder or bundled model name (repeat for an ensemble)",
    )
    p.add_argument("--out", required=True, help="output .zarr folder")
    add_shared(p, "--mpp", "--backend")
    add_config_options(p, InferConfig, infer_flags())
    p.add_argument("--resume", action="store_true", help="continue an interrupted prediction")
    p.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="run the blocks on a dask.distributed cluster (tcp://host:8786); "
        "its workers must see the slide, the checkpoints and --out at the same paths",
    )
    add_shared(p, "--quiet")


def infer_config(args: argparse.Namespace, patch_size: int) -> Any:
    """The :class:`~napari_slideseg.infer.InferConfig` of the command line.

    Parameters
    ----------
    args
        The parsed command line.
    patch_size
        The (first) model's patch size: the tile when ``--tile`` is not given.

    Returns
    -------
    InferConfig
        The inference options.
    """
    from ..infer import InferConfig

    kw = config_kwargs(args, InferConfig, infer_flags())
    if not kw["tile"]:
        log.debug("no --tile: the model's patch size %d", patch_size)
        kw["tile"] = patch_size
    if kw["overlap"] is None:
        kw["overlap"] = min(128, kw["tile"] // 2)
    return InferConfig(**kw)


def run(args: argparse.Namespace) -> int:
    """Predict the slide into ``--out`` and say how to export it.

    Parameters
    ----------
    args
        The parsed command line.

    Returns
    -------
    int
        The exit status (0).
    """
    import zarr

    from ..infer import predict_slide_steps
    from ..models import load_model, resolve_model

    slide = drive_open(args.slide, args.quiet, args.mpp, args.backend)
    models = [load_model(resolve_model(m)) for m in args.model]
    cfg = infer_config(args, models[0][1].patch_size)
    out = drive(
        predict_slide_steps(
            slide, models, args.out, cfg, resume=args.resume, client=args.scheduler
        ),
        quiet=args.quiet,
    )
    info = cast("dict[str, Any]", zarr.open_group(str(out), mode="r").attrs["slideseg_inference"])
    res = info.get("resolution") or {}
    if res.get("slide_mpp") and res.get("model_mpp"):
        print(
            f"zoom {res['zoom']:g} (slide level {res['slide_mpp']:.4g} µm/px, "
            f"model {res['model_mpp']:.4g} µm/px)"
        )
    n = info.get("n_instances")  # recorded by a task that writes nuclei
    if n is not None:
        print(
            f"wrote {out}: {n} nuclei (instances, nucleus types, instances.csv); export with: "
            f"slideseg export {out} --instances --to nuclei.geojson.gz"
        )
        return 0
    print(
        f"wrote {out} (labels{' + probs' if args.save_probs else ''}); export with: slideseg export {out} --to OUT.png"
    )
    return 0
