"""``slideseg info``: describe a slide (levels, shapes, tile size, mpp, backend)."""

from __future__ import annotations

import argparse
import json
import sys

from .common import add_shared

NAME = "info"
HELP = "describe a slide: levels, shapes, tile size, mpp, backend"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``slideseg info``.

    Parameters
    ----------
    p
        The command's parser.
    """
    p.add_argument(
        "slide",
        help="slide file or folder (SVS, TIFF, OME-TIFF, NDPI, MIRAX, VMS, BIF, DICOM file or "
        "folder, OME-Zarr, PNG, JPEG)",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument(
        "--properties",
        action="store_true",
        help="print every vendor property the file states (OpenSlide's, DICOM equipment)",
    )
    add_shared(p, "--mpp", "--backend")


def run(args: argparse.Namespace) -> int:
    """Print the slide's description (or its JSON with ``--json``).

    Parameters
    ----------
    args
        The parsed command line.

    Returns
    -------
    int
        The exit status (0).
    """
    from ..io.slide import open_slide
    from ..progress import tqdm_callback

    callback, close = tqdm_callback(disable=args.json or not sys.stderr.isatty())
    try:
        slide = open_slide(args.slide, progress=callback, mpp=args.mpp, backend=args.backend)
    finally:
        close()
    info = slide.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    meta = info["metadata"]
    mpp = (
        f"{info['mpp'][1]:.4f} x {info['mpp'][0]:.4f} µm/px (x, y)"
        + (" (given with --mpp)" if meta.get("mpp_source") == "user" else "")
        if info["mpp"]
        else "unknown (give it with --mpp)"
    )
    print(f"{slide.path}")
    print(f"  backend      {info['backend']} ({meta.get('format', '?')})")
    if meta.get("backend_reason"):
        print(f"  chosen       {meta['backend_reason']}")
    _print_vendor(meta, info["associated_images"], args.properties)
    print(f"  pixels       {info['dtype']}, {info['channels']} channel(s)")
    print(f"  tile size    {info['tile_size'][1]} x {info['tile_size'][0]} (width x height)")
    print(f"  mpp          {mpp}")
    if meta.get("compression"):
        print(f"  compression  {meta['compression']}")
    print(f"  levels       {len(info['levels'])}")
    for lv in info["levels"]:
        print(
            f"    {lv['level']}: {lv['width']:>7} x {lv['height']:<7} (width x height)"
            f"  downsample {lv['downsample']:g}"
        )
    if meta.get("cache"):
        print(f"  cache        {meta['cache']}")
    return 0


def _print_vendor(meta: dict, associated: dict, every: bool) -> None:
    """The vendor, objective and associated images; every property with ``--properties``."""
    if meta.get("vendor"):
        print(f"  vendor       {meta.get('vendor_name') or meta['vendor']}")
    if meta.get("objective_power"):
        print(f"  objective    {meta['objective_power']:g}x")
    if meta.get("equipment"):
        print(f"  equipment    {', '.join(f'{k} {v}' for k, v in meta['equipment'].items())}")
    if associated:
        sizes = ", ".join(f"{k} {v[0]} x {v[1]}" if v else k for k, v in sorted(associated.items()))
        print(f"  associated   {sizes} (not shown; a label may carry patient data)")
    props = meta.get("properties") or {}
    if every:
        for k, v in props.items():
            print(f"    {k} = {v}")
    elif props:
        print(f"  properties   {len(props)} (--properties prints them)")
