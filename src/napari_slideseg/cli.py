"""The ``slideseg`` console command.

Every subcommand is a thin driver over one core function; progress generators
are shown with a terminal progress bar. Errors about user input print one line
(``slideseg: error: <file>: <problem>``) and exit with status 2, without a
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .io.errors import SlideSegError


def _cmd_info(args: argparse.Namespace) -> int:
    from .io.slide import open_slide
    from .progress import tqdm_callback

    callback, close = tqdm_callback(disable=args.json or not sys.stderr.isatty())
    try:
        slide = open_slide(args.slide, progress=callback)
    finally:
        close()
    info = slide.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    meta = info["metadata"]
    mpp = f"{info['mpp'][1]:.4f} x {info['mpp'][0]:.4f} µm/px (x, y)" if info["mpp"] else "unknown"
    print(f"{slide.path}")
    print(f"  backend      {info['backend']} ({meta.get('format', '?')})")
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``slideseg`` (subcommands register here)."""
    parser = argparse.ArgumentParser(
        prog="slideseg",
        description="Whole-slide histology segmentation: inspect, patch, train, predict, export.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("info", help="describe a slide: levels, shapes, tile size, mpp, backend")
    p.add_argument("slide", help="slide file (SVS, TIFF, OME-TIFF, NDPI, OME-Zarr, PNG, JPEG)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``slideseg`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SlideSegError as err:
        print(f"slideseg: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("slideseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
