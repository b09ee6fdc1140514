"""Open-to-first-screen time and peak RSS: ``open_slide`` vs a naive ``tifffile.imread``.

Run::

    python benchmarks/bench_open.py            # 100k x 100k pyramid (generated once)
    python benchmarks/bench_open.py --size 40000 --repeats 5

The pyramid is a JPEG BigTIFF streamed to ``benchmarks/.cache`` the first time
(about 1.4 GB, tens of seconds). Each measurement runs in a fresh Python
process so peak RSS (``ru_maxrss``) belongs to that path alone.

First screen (imports excluded, reported apart) = open + read the whole lowest level (what a viewer shows first)
+ one 1024 x 1024 region of level 0 (the first zoom-in). The naive path is
``tifffile.imread(path, level=k)``: it decodes a whole level into memory, so
it is measured on a reduced level (level 0 of a 100k slide would need 30 GB).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

_OURS = r"""
import json, resource, sys, time
t_import = time.perf_counter()
from napari_slideseg import open_slide
t0 = time.perf_counter()
t_import = t0 - t_import
slide = open_slide(sys.argv[1])
t_open = time.perf_counter() - t0
n = slide.n_levels - 1
low = slide.read_region(n, 0, 0, *slide.levels[n].shape[:2])
h, w = slide.levels[0].shape[:2]
region = slide.read_region(0, h // 2, w // 2, 1024, 1024)
t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "open": t_open, "import": t_import,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "lowest": list(low.shape), "region": list(region.shape)}))
"""

_NAIVE = r"""
import json, resource, sys, time
import tifffile
t0 = time.perf_counter()
arr = tifffile.imread(sys.argv[1], level=int(sys.argv[2]))
t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "shape": list(arr.shape)}))
"""


def _run(code: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="level-0 edge in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--naive-level",
        type=int,
        default=None,
        help="level for tifffile.imread (default: the largest level under 2 GB decoded)",
    )
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    args = parser.parse_args(argv)

    from napari_slideseg.io.synthetic import write_synthetic_slide

    args.cache.mkdir(parents=True, exist_ok=True)
    path = args.cache / f"synthetic_{args.size}.tif"
    if not path.exists():
        t0 = time.perf_counter()
        write_synthetic_slide(path, args.size, args.size, tile=512)
        print(
            f"generated {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t0:.1f} s"
        )

    import tifffile

    with tifffile.TiffFile(path) as tif:
        shapes = [lv.shape for lv in tif.series[0].levels]
    level = args.naive_level
    if level is None:
        level = next(i for i, s in enumerate(shapes) if s[0] * s[1] * s[2] <= 2 * 2**30)

    ours = [_run(_OURS, str(path)) for _ in range(args.repeats)]
    naive = [_run(_NAIVE, str(path), str(level)) for _ in range(args.repeats)]
    med = statistics.median
    o_t, o_rss = med(r["seconds"] for r in ours), med(r["rss_mb"] for r in ours)
    n_t, n_rss = med(r["seconds"] for r in naive), med(r["rss_mb"] for r in naive)
    print(f"slide: {args.size} x {args.size}, {len(shapes)} levels, tiles 512, JPEG")
    print(f"{'path':<52} {'median s':>9} {'peak RSS MB':>12}")
    print(f"{'open_slide + lowest level + 1024^2 level-0 region':<52} {o_t:>9.3f} {o_rss:>12.0f}")
    print(f"{f'tifffile.imread level {level} {shapes[level][:2]}':<52} {n_t:>9.3f} {n_rss:>12.0f}")
    print(f"ratio naive/ours: time {n_t / o_t:.1f}x, peak RSS {n_rss / o_rss:.1f}x")
    print(
        f"(imports excluded from both; open alone: median {med(r['open'] for r in ours) * 1000:.0f} ms; "
        f"import napari_slideseg: median {med(r['import'] for r in ours) * 1000:.0f} ms; "
        f"runs: {args.repeats})"
    )


if __name__ == "__main__":
    main()
