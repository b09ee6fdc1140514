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


def _cmd_demo(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from ._sample_data import sample_slide_path
    from .io.slide import open_slide

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    slide = open_slide(sample_slide_path())
    timings.append(("open the bundled sample slide", time.perf_counter() - t0))

    t0 = time.perf_counter()
    info_path = out / "slide_info.json"
    _atomic_write_text(info_path, json.dumps(slide.info(), indent=2))
    thumb = slide.thumbnail(1024)
    from PIL import Image

    thumb_path = out / "thumbnail.png"
    tmp = thumb_path.with_name(f".{thumb_path.name}.tmp")
    Image.fromarray(thumb).save(tmp, format="PNG")
    tmp.replace(thumb_path)
    timings.append(("write slide info and thumbnail", time.perf_counter() - t0))

    print(f"sample slide: {slide!r}")
    for step, sec in timings:
        print(f"  {step:<40} {sec:7.2f} s")
    print(f"outputs in {out.resolve()}:")
    for p in (info_path, thumb_path):
        print(f"  {p.name}")
    return 0


def _atomic_write_text(path, text: str) -> None:
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


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

    p = sub.add_parser("demo", help="run the main job on the bundled sample slide")
    p.add_argument("--out", default="slideseg-demo", help="output folder (default: slideseg-demo)")
    p.set_defaults(func=_cmd_demo)
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
