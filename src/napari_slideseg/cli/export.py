"""``slideseg export`` (alias ``convert``): write labels or masks in another format.

One command for both jobs: exporting a prediction and converting a mask file
(a colour, index or instance mask, or an RLE CSV) to another mask format.
``convert`` is the same command under the name that reads better for the
second job.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ..options import GEOJSON_FORMATS, STREAMED_FORMATS, ExportFormat, RLELayout, RLEOrder, values
from .common import add_shared, checked, drive, stem

NAME = "export"
HELP = "write a label image (zarr, index/colour mask, RLE CSV) as PNG, RLE CSV, OME-Zarr or GeoJSON"
DESCRIPTION = (
    "Write LABELS (a prediction zarr, a colour/index/instance mask or an RLE CSV) in the "
    "format the name --to ends with. 'slideseg convert' is the same command."
)
#: Other names of the command: ``{name: help}`` (same options, same behaviour).
ALIASES = {
    "convert": "convert a colour mask or RLE CSV to another mask format (the same as export)"
}

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``slideseg export`` / ``convert``.

    Parameters
    ----------
    p
        The command's parser.
    """
    from ..options import RLEBase
    from ..validate import positive_int

    p.add_argument("labels", metavar="LABELS")
    p.add_argument("--to", required=True, help="output: .png, .tif, .csv, .ome.zarr, .geojson[.gz]")
    add_shared(p, "--partial")
    p.add_argument("--classmap", help="preset (biopsy6, wsi3, binary) or class map JSON")
    p.add_argument(
        "--rle-order",
        choices=values(RLEOrder),
        default=RLEOrder.COL.value,
        help="pixel order of RLE written (default col, Kaggle/HuBMAP)",
    )
    p.add_argument(
        "--rle-base",
        type=int,
        choices=values(RLEBase),
        default=RLEBase.ONE.value,
        help="index of the first pixel in RLE written (default 1)",
    )
    p.add_argument("--rle-layout", choices=values(RLELayout), default=RLELayout.SEMANTIC.value)
    p.add_argument(
        "--in-rle-order",
        choices=values(RLEOrder),
        help="pixel order of an input RLE that does not record it",
    )
    p.add_argument(
        "--shape",
        type=checked(positive_int, "--shape"),
        nargs=2,
        metavar=("H", "W"),
        help="shape of an input RLE without shape columns",
    )
    add_shared(p, "--tolerance", "--min-class-share")
    p.add_argument("--indexed", action="store_true", help="palette (indexed) PNG instead of RGB")
    p.add_argument(
        "--instances",
        action="store_true",
        help="GeoJSON: one polygon per label id; a HoVer prediction: its nuclei "
        "(.geojson[.gz] QuPath detections with types, .csv one RLE row per nucleus)",
    )
    p.add_argument(
        "--table", action="store_true", help="a HoVer prediction: copy its instance table CSV"
    )
    p.add_argument("--image-id", help="image id written in RLE CSV rows")
    p.add_argument(
        "--original",
        action="store_true",
        help="a prediction with corrections painted in napari: export it as predicted "
        "(default: with the corrections)",
    )
    add_shared(p, "--quiet")


def export_nuclei(args: argparse.Namespace, src: Path) -> int:
    """A HoVer prediction's nuclei (GeoJSON, RLE CSV) or its instance table (``--table``).

    Parameters
    ----------
    args
        The parsed command line.
    src
        The prediction folder.

    Returns
    -------
    int
        The exit status (0).
    """
    from ..infer.hover import export_instances_steps

    what = "table" if args.table else None
    out = drive(
        export_instances_steps(
            src, args.to, what=what, image_id=args.image_id, partial=args.partial
        ),
        quiet=args.quiet,
    )
    print(f"wrote {out} ({'instance table' if args.table else 'nuclei'} of {src})")
    return 0


def hover_instance_map(
    args: argparse.Namespace, src: Path, info: dict, classmap: Any
) -> tuple[Any, dict]:
    """A HoVer prediction's nuclei as an id image, with each id's type.

    Parameters
    ----------
    args
        The parsed command line.
    src
        The prediction folder.
    info
        What reading the prediction's labels said about them.
    classmap
        The prediction's nucleus types.

    Returns
    -------
    tuple
        ``(instances, info)``: the dask id image and ``info`` with the types per id.
    """
    import dask.array as da
    import zarr

    from ..infer.hover import read_instance_table

    table = read_instance_table(src, partial=args.partial)
    labels = da.from_zarr(zarr.open_group(str(src), mode="r")["instances"])
    types = dict(
        zip(table["id"].astype(int).tolist(), table["type"].astype(int).tolist(), strict=True)
    )
    info = {
        **info,
        "format": "HoVer prediction",
        "type_classmap": classmap,
        "instance_classes": types,
    }
    return labels, info


def export_instance_map(args: argparse.Namespace, labels: Any, info: dict, where: Any) -> int:
    """Export an instance map (object ids, not classes) as ids: never as a class map.

    PNG is a 16-bit id image (ids above 65535 are refused naming the formats
    that hold them), TIFF a uint16/uint32 id image, CSV one RLE row per
    object (with its type where the input records one), OME-Zarr instance
    labels, GeoJSON one polygon per object.

    Parameters
    ----------
    args
        The parsed command line.
    labels
        The id image.
    info
        What reading it said (``type_classmap``, ``instance_classes``, ``format``).
    where
        Its :class:`~napari_slideseg.io.placement.Placement` (or ``None``).

    Returns
    -------
    int
        The exit status (0).

    Raises
    ------
    MaskError
        With ``--indexed`` (a class palette cannot hold object ids).
    """
    from ..io.export import export_labels
    from ..io.masks import resolve_classmap

    if args.indexed:
        from ..io.palette import MaskError

        raise MaskError(
            f"{args.labels}: --indexed writes a class palette, but this is an instance map "
            "(object ids, not classes); leave --indexed out for a 16-bit id PNG"
        )
    types_cm = resolve_classmap(args.classmap) if args.classmap else info.get("type_classmap")
    extra: dict[str, Any] = {}
    if str(args.to).lower().endswith(ExportFormat.CSV):
        extra = {"base": args.rle_base}
    out = export_labels(
        labels,
        args.to,
        classmap=types_cm,
        rle_order=args.rle_order,
        image_id=args.image_id or stem(args.labels),
        placement=where,
        instances=True,
        instance_classes=info.get("instance_classes"),
        **extra,
    )
    ext = str(out).lower().rsplit(".", 1)[-1]
    print(f"wrote {out} ({info.get('format', 'instance map')} instances -> {ext}, object ids)")
    return 0


def _format_options(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """The options of the writer ``name``'s suffix picks (export_labels passes them on)."""
    if name.endswith(ExportFormat.PNG):
        return {"indexed": args.indexed}
    if name.endswith(ExportFormat.CSV):
        # class rows without a class_color column, as this command has always written
        return {"base": args.rle_base, "class_colors": None}
    if name.endswith(GEOJSON_FORMATS):
        return {"mode": "instances" if args.instances else "semantic"}
    return {}


def export_classes(
    args: argparse.Namespace, labels: Any, classmap: Any, info: dict, where: Any
) -> int:
    """Export a class label image (with its class map, or one made for its values).

    Parameters
    ----------
    args
        The parsed command line.
    labels
        The class label image.
    classmap
        Its class map, or ``None`` (then ``class_0``, ``class_1``... for its values).
    info
        What reading it said (``format``).
    where
        Its :class:`~napari_slideseg.io.placement.Placement` (or ``None``).

    Returns
    -------
    int
        The exit status (0).
    """
    from ..io.export import check_not_empty, default_classmap, export_labels

    out = args.to
    name = str(out).lower()
    check_not_empty(labels, out)
    if classmap is None:
        classmap = default_classmap(labels, out)
        log.info("%s: no class map; classes named %s", args.labels, ", ".join(classmap.names))
    export_labels(
        labels,
        out,
        classmap=classmap,
        rle_order=args.rle_order,
        rle_layout=args.rle_layout,
        image_id=args.image_id or stem(args.labels),
        placement=where,
        **_format_options(args, name),
    )
    level = f", level {where.level} -> level-0 coordinates" if where and where.level else ""
    print(
        f"wrote {out} ({info.get('format', 'labels')} -> {name.rsplit('.', 1)[-1]}{level}, "
        f"classes: {', '.join(classmap.names)})"
    )
    return 0


def corrected_labels(args: argparse.Namespace, src: Path, labels: Any) -> Any:
    """A prediction's class labels with the corrections saved beside it (unless ``--original``).

    Says so on stderr either way, so an export never silently differs from
    what napari shows (napari shows the corrections). A HoVer prediction's
    nuclei are exported as predicted: their table does not follow corrections.

    Parameters
    ----------
    args
        The parsed command line (``--original``, ``--instances``, ``--quiet``).
    src : Path
        What is exported.
    labels
        Its labels as read.

    Returns
    -------
    array-like
        ``labels``, or the corrected labels.
    """
    import sys

    if not (src / "corrections").is_dir():
        return labels
    from ..corrections import open_corrections

    store = open_corrections(src, writable=False)
    if args.instances and "instances" in store.arrays():
        print(
            f"{src}: its nucleus corrections are not exported (the nucleus table does not "
            "follow them); exporting the nuclei as predicted",
            file=sys.stderr,
        )
        return labels
    if "labels" not in store.arrays() or not store.version:
        if store.arrays():
            print(
                f"{src}: its corrections are of {', '.join(store.arrays())}, not of the class "
                "labels exported here; exporting them as predicted",
                file=sys.stderr,
            )
        return labels
    if args.original:
        print(
            f"{src}: exporting as predicted (--original), without its corrections", file=sys.stderr
        )
        return labels
    if not args.quiet:
        print(
            f"{src}: exporting with the corrections painted on it (version {store.version}, "
            f"{len(store.regions('labels'))} regions); --original exports it as predicted",
            file=sys.stderr,
        )
    return store.corrected("labels")


def run(args: argparse.Namespace) -> int:
    """Export ``LABELS`` to ``--to`` (classes, instance ids or a HoVer prediction's nuclei).

    Parameters
    ----------
    args
        The parsed command line.

    Returns
    -------
    int
        The exit status (0).
    """
    from ..io.masks import read_labels
    from ..io.placement import Placement

    src = Path(args.labels)
    streamed = str(args.to).lower().endswith(STREAMED_FORMATS)
    if (args.table or (args.instances and streamed)) and (src / "instances").is_dir():
        return export_nuclei(args, src)
    labels, classmap, info = read_labels(
        args.labels,
        classmap=args.classmap,
        rle_order=args.in_rle_order,
        shape=tuple(args.shape) if args.shape else None,
        tolerance=args.tolerance,
        partial=args.partial,
        min_share=args.min_class_share,
    )
    labels = corrected_labels(args, src, labels)
    # a prediction's level and level-0 mpp (or what the mask file records): GeoJSON in
    # level-0 pixels, rasters with their resolution, RLE rows with level and slide size
    where = Placement.from_dict(info.get("placement"))
    if args.instances and (src / "instances").is_dir():
        labels, info = hover_instance_map(args, src, info, classmap)
        return export_instance_map(args, labels, info, where)
    if info.get("instances"):
        return export_instance_map(args, labels, info, where)
    return export_classes(args, labels, classmap, info, where)
