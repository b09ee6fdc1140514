"""Peak RSS and time of writing a slide-sized dask labels array to PNG, RLE CSV and OME-Zarr.

Run::

    python benchmarks/bench_export.py              # 50000 x 50000
    python benchmarks/bench_export.py --size 20000

The labels are generated lazily per chunk (blobs of 3 classes from a seeded
coarse grid), so the array itself never exists in memory. Each writer runs in
a fresh process; peak RSS is that process's high-water mark (``VmHWM``). For
scale, the labels are ``size**2`` bytes as uint8 (2.3 GiB at 50k) and their
colour image 3x that.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

_CODE = r"""
import json, sys, time
from pathlib import Path
import dask.array as da
import numpy as np

size, fmt, out = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
chunk = 2048

def block(block_info=None):
    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    yy, xx = np.mgrid[y0:y1, x0:x1]
    cell = ((yy // 700) * 7919 + (xx // 900) * 104729) % 5
    ring = ((yy % 700) > 100) & ((xx % 900) > 150)
    return np.where(ring, np.minimum(cell, 2), 0).astype(np.uint8)

labels = da.map_blocks(block, chunks=((chunk,) * (size // chunk) + ((size % chunk,) if size % chunk else ()),) * 2,
                       dtype=np.uint8)

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
base = hwm()
t0 = time.perf_counter()
from napari_slideseg.io.palette import ClassMap
cm = ClassMap.preset("wsi3")
if fmt == "png":
    from napari_slideseg.io.export import write_color_png
    write_color_png(out / "m.png", labels, cm, band_rows=256, level=1)
elif fmt == "csv":
    from napari_slideseg.io.rle import write_rle_csv
    write_rle_csv(out / "m.csv", labels, layout="semantic", order="col", class_names=list(cm.names))
elif fmt == "zarr":
    from napari_slideseg.io.export import write_ome_zarr_labels
    write_ome_zarr_labels(out / "m.ome.zarr", labels, classmap=cm, chunk=2048)
t = time.perf_counter() - t0
size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
print(json.dumps({"seconds": t, "rss_mb": hwm(), "start_mb": base, "out_mb": size_mb}))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=50000)
    parser.add_argument("--formats", nargs="+", default=["png", "csv", "zarr"])
    args = parser.parse_args(argv)
    print(f"labels {args.size} x {args.size} uint8 (dask, chunks 2048, generated lazily)")
    print(f"{'writer':<10} {'seconds':>8} {'peak RSS MB':>12} {'start MB':>9} {'output MB':>10}")
    for fmt in args.formats:
        with tempfile.TemporaryDirectory() as tmp:
            res = subprocess.run(
                [sys.executable, "-c", _CODE, str(args.size), fmt, tmp],
                capture_output=True,
                text=True,
            )
            if res.returncode:
                print(f"{fmt:<10} failed: {res.stderr[-500:]}")
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
        print(
            f"{fmt:<10} {r['seconds']:>8.1f} {r['rss_mb']:>12.0f} {r['start_mb']:>9.0f} {r['out_mb']:>10.1f}"
        )


if __name__ == "__main__":
    main()
