"""``slideseg patch``: cut image (and mask) patches on one grid, with a manifest."""

from __future__ import annotations

import argparse
from typing import Any

from ..options import Overwrite, PatchFormat, RLEOrder, values
from .common import add_shared, checked, drive, drive_open, needs
from .fields import Flag, add_config_options, config_kwargs

NAME = "patch"
HELP = "cut image (and mask) patches on one grid into PNGs or zarr with a manifest"
DESCRIPTION = "Cut patches from SLIDE (and MASK, on exactly the same grid)."


def patch_flags() -> dict[str, Flag]:
    """How the fields of :class:`~napari_slideseg.patching.PatchConfig` are given.

    Returns
    -------
    dict
        ``{field name: Flag}`` for the fields whose option is not the generic one.
    """
    from ..options import GridMode, PadMode, Unannotated
    from ..validate import fraction, int_in_range, nonneg_int, positive_int
    from .common import positive_float

    def frac(flag: str, note: str = "") -> Flag:
        return Flag(type=checked(fraction, flag), note=note)

    return {
        "size": Flag(type=checked(positive_int, "--size")),
        "stride": Flag(
            type=checked(positive_int, "--stride"),
            default=None,
            note="default: --size (no overlap)",
        ),
        "level": Flag(type=checked(nonneg_int, "--level"), group="level"),
        "mpp": Flag(flags=("--target-mpp",), dest="target_mpp", type=positive_float, group="level"),
        "zoom": Flag(type=positive_float),
        "grid": Flag(
            choices=GridMode,
            help="valid: windows inside the image (or region) only; pad: windows cover it "
            "all, the last ones padded over the edge",
        ),
        "pad_mode": Flag(choices=PadMode),
        "pad_value": Flag(type=checked(int_in_range, "--pad-value", 0, 65535)),
        "region": Flag(type=checked(nonneg_int, "--region"), metavar=("Y0", "X0", "Y1", "X1")),
        "polygons": Flag(
            metavar="POLYGONS", note="y,x,y,x,... per polygon, ; between them, or JSON"
        ),
        "min_tissue": frac("--min-tissue", "drop patches with less tissue"),
        "max_black": frac("--max-black", "drop patches with more near-black"),
        "max_white": frac("--max-white", "drop patches with more near-white"),
        "tissue_level": Flag(type=checked(nonneg_int, "--tissue-level")),
        "keep_background": frac("--keep-background"),
        "seed": Flag(type=checked(int_in_range, "--seed", 0, 2**31 - 1)),
        "unannotated": Flag(
            choices=Unannotated,
            help="with a GeoJSON --mask: pixels outside every annotation are background, or "
            "ignore (255 in the mask patches; patches with no annotation are dropped)",
        ),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``slideseg patch`` (every ``PatchConfig`` field among them).

    Parameters
    ----------
    p
        The command's parser.
    """
    from ..patching import PatchConfig
    from ..validate import nonneg_int

    p.add_argument("slide")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--mask",
        help="colour mask, index mask, RLE CSV, zarr labels, or QuPath GeoJSON annotations "
        "(.geojson, .geojson.gz; with --classmap naming their classes)",
    )
    p.add_argument(
        "--skip-unknown-classes",
        action="store_true",
        help="with a GeoJSON --mask: skip annotations whose class is not in --classmap "
        "(and unclassified ones) instead of stopping",
    )
    p.add_argument("--classmap", help="preset (biopsy6, wsi3, binary) or a classmap JSON")
    p.add_argument(
        "--instances",
        action="store_true",
        help="--mask is a nucleus instance map (.npy, .mat, 16-bit PNG, TIFF) for HoVer training",
    )
    p.add_argument("--types", help="with --instances: per-pixel nucleus type map")
    p.add_argument(
        "--rle-order",
        choices=values(RLEOrder),
        help="pixel order of an RLE mask without one recorded",
    )
    add_shared(p, "--tolerance", "--min-class-share", "--mpp", "--backend")
    add_config_options(p, PatchConfig, patch_flags())
    p.add_argument("--format", choices=values(PatchFormat), default=PatchFormat.PNG.value)
    p.add_argument("--overwrite", choices=values(Overwrite), default=Overwrite.ERROR.value)
    p.add_argument("--workers", type=checked(nonneg_int, "--workers"), default=2)
    add_shared(p, "--quiet")


def read_mask(args: argparse.Namespace, slide: Any) -> tuple[Any, Any, Any, str | None]:
    """The ``--mask`` (class labels or, with ``--instances``, an instance map) and its classes.

    Parameters
    ----------
    args
        The parsed command line.
    slide
        The opened slide (its level-0 shape places an RLE mask).

    Returns
    -------
    tuple
        ``(mask, classmap, types, mask_id)``; each ``None`` when not given.

    Raises
    ------
    OptionError
        ``--instances`` without ``--mask``; a GeoJSON ``--mask`` without
        ``--classmap``; ``--skip-unknown-classes`` with a mask that is not GeoJSON.
    """
    from ..io.annotations import is_annotation_file
    from ..io.masks import resolve_classmap

    mask = classmap = types = None
    mask_id = None
    if args.instances:
        from ..io.masks import read_instance_map

        if not args.mask:
            from ..validate import OptionError

            raise OptionError("--instances needs --mask INSTANCE_MAP")
        mask = read_instance_map(args.mask)
        mask_id = str(args.mask)
        if args.types:
            types = read_instance_map(args.types)
        classmap = resolve_classmap(args.classmap) if args.classmap else None
    elif args.mask and is_annotation_file(args.mask):
        mask, classmap = read_annotation_mask(args)
        mask_id = str(args.mask)
    elif args.mask:
        from ..io.masks import read_labels

        if args.skip_unknown_classes:
            from ..validate import OptionError

            raise OptionError("--skip-unknown-classes only applies to a GeoJSON --mask")

        mask, classmap, _ = read_labels(
            args.mask,
            classmap=args.classmap,
            rle_order=args.rle_order,
            shape=tuple(slide.levels[0].shape[:2]),
            tolerance=args.tolerance,
            min_share=args.min_class_share,
        )
        mask_id = str(args.mask)
    elif args.classmap:
        classmap = resolve_classmap(args.classmap)
    return mask, classmap, types, mask_id


def read_annotation_mask(args: argparse.Namespace) -> tuple[Any, Any]:
    """The GeoJSON ``--mask``'s annotations, read with ``--classmap``.

    Parameters
    ----------
    args
        The parsed command line.

    Returns
    -------
    tuple
        ``(annotations, classmap)``; the annotations are rasterised lazily
        at the level cut by :func:`~napari_slideseg.patching.extract_patches_steps`.

    Raises
    ------
    OptionError
        Without ``--classmap``.
    SlideSegError
        The file cannot be read, or holds a class not in the map (without
        ``--skip-unknown-classes``).
    """
    from ..io.annotations import read_annotations
    from ..io.masks import resolve_classmap
    from ..validate import OptionError

    if not args.classmap:
        raise OptionError(
            f"--mask {args.mask}: GeoJSON annotations need --classmap (a preset or a class map "
            "JSON whose names are the QuPath classes)"
        )
    classmap = resolve_classmap(args.classmap)
    assert classmap is not None  # resolve_classmap gives None only for None
    return read_annotations(args.mask, classmap, skip_unknown=args.skip_unknown_classes), classmap


def run(args: argparse.Namespace) -> int:
    """Cut the patches and print the summary.

    Parameters
    ----------
    args
        The parsed command line.

    Returns
    -------
    int
        The exit status (0).
    """
    from ..patching import PatchConfig, PatchError, extract_patches_steps

    needs(args, "--instances", "--types")
    needs(args, "--mask", "--skip-unknown-classes")
    slide = drive_open(args.slide, args.quiet, args.mpp, args.backend)
    slide.check_level(args.level, option="--level", error=PatchError)
    mask, classmap, types, mask_id = read_mask(args, slide)
    kw = config_kwargs(args, PatchConfig, patch_flags())
    kw["stride"] = kw["stride"] or kw["size"]
    res = drive(
        extract_patches_steps(
            slide,
            args.out,
            PatchConfig(**kw),
            mask=mask,
            classmap=classmap,
            mask_id=mask_id,
            fmt=args.format,
            overwrite=args.overwrite,
            workers=args.workers,
            instances=args.instances,
            types=types,
        ),
        quiet=args.quiet,
    )
    print(f"{res.n_patches} patches in {res.out} (manifest: {res.manifest.name})")
    for key, value in res.summary.items():
        print(f"  {key:<16} {value}")
    return 0
