"""Time and peak RSS of exporting millions of nuclei to QuPath GeoJSON.gz.

Run::

    python benchmarks/bench_geojson.py                   # 36000 x 36000, 5.06 M nuclei
    python benchmarks/bench_geojson.py --size 12000      # 0.56 M nuclei
    python benchmarks/bench_geojson.py --nuclei 100000   # the size that holds ~100k nuclei
    python benchmarks/bench_geojson.py --size 12000 --check

What is measured: :func:`napari_slideseg.io.export.write_geojson` writing a
uint32 instance map as ``nuclei.geojson.gz`` detections (no classes, no
properties: the geometry path), in a fresh process. The map is a dask array
of 2048-pixel chunks generated lazily (so it never exists in memory): one
81-pixel disc (radius 5) per cell of a regular 16-pixel grid, jittered by up
to 2 pixels, ids numbered row by row from 1. The grid starts 7 pixels in, so
a row of nuclei straddles every block border (the writer's default block is
2048). Generating the chunks is part of the time (the writer reads the map
twice), as a prediction's zarr decompression would be.

Reported: wall seconds of the export call, peak RSS (``VmHWM`` of the fresh
process, which includes the imports), the process's RSS before the export,
the number of features in the file (counted from its lines after the timing)
and the file's size. ``--check`` also decodes every feature and checks that
each nucleus appears exactly once with an 81-pixel polygon.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

#: Grid spacing, first cell's offset, disc radius and jitter of the nuclei.
SPACING, OFFSET, RADIUS, JITTER = 16, 7, 5, 2

_CODE = r"""
import json, sys, time
from pathlib import Path
import dask.array as da
import numpy as np

size, out = int(sys.argv[1]), Path(sys.argv[2])
S, O, R, J = (int(v) for v in sys.argv[3:7])
chunk = 2048
n = (size - O) // S  # cells per side
dy, dx = np.mgrid[-R : R + 1, -R : R + 1]
disc = dy * dy + dx * dx <= R * R
ody, odx = dy[disc], dx[disc]

def jitter(r, c, salt):
    h = (r * 73856093) ^ (c * 19349663) ^ salt
    return (h % (2 * J + 1)) - J

def block(block_info=None):
    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    b = np.zeros((y1 - y0, x1 - x0), np.uint32)
    r = np.arange(max(0, (y0 - O) // S - 1), min(n, (y1 - O) // S + 2))
    c = np.arange(max(0, (x0 - O) // S - 1), min(n, (x1 - O) // S + 2))
    if not r.size or not c.size:
        return b
    rr, cc = (a.ravel() for a in np.meshgrid(r, c, indexing="ij"))
    cy = O + rr * S + S // 2 + jitter(rr, cc, 0)
    cx = O + cc * S + S // 2 + jitter(rr, cc, 83492791)
    ys = (cy[:, None] + ody[None]).ravel() - y0
    xs = (cx[:, None] + odx[None]).ravel() - x0
    ids = np.repeat((rr * n + cc + 1).astype(np.uint32), ody.size)
    keep = (ys >= 0) & (ys < b.shape[0]) & (xs >= 0) & (xs < b.shape[1])
    b[ys[keep], xs[keep]] = ids[keep]
    return b

edges = (chunk,) * (size // chunk) + ((size % chunk,) if size % chunk else ())
labels = da.map_blocks(block, chunks=(edges, edges), dtype=np.uint32)

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024

from napari_slideseg.io.export import write_geojson
base = hwm()
t0 = time.perf_counter()
write_geojson(out, labels, object_type="detection")
t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "rss_mb": hwm(), "start_mb": base, "nuclei": n * n}))
"""


def _lines(path: Path):
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        yield from fh


def count_features(path: Path) -> int:
    """Features in a file the writer made: one per line between the header and the tail."""
    n = sum(1 for _ in _lines(path))
    return max(0, n - 2)


def check_features(path: Path, nuclei: int) -> int:
    """Decode every feature; each id 1..nuclei once, each polygon of 81 pixels' area."""
    import numpy as np

    seen = np.zeros(nuclei + 1, bool)
    lines = iter(_lines(path))
    head = next(lines)
    json.loads(head.rstrip("\n") + "]}")
    n = 0
    for line in lines:
        line = line.rstrip("\n").rstrip(",")
        if line == "]}":
            break
        f = json.loads(line)
        i = f["properties"]["id"]
        assert f["id"] == str(i) and 1 <= i <= nuclei and not seen[i], f"id {i} twice or unknown"
        seen[i] = True
        ring = np.asarray(f["geometry"]["coordinates"][0], float)
        x, y = ring[:, 0], ring[:, 1]
        area = abs(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1])) / 2
        assert area == 81, f"id {i}: area {area}"
        n += 1
    assert n == nuclei and seen[1:].all(), f"{n} features for {nuclei} nuclei"
    return n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=None, help="edge in pixels (default 36000)")
    parser.add_argument("--nuclei", type=int, default=None, help="about this many nuclei")
    parser.add_argument("--check", action="store_true", help="decode and verify every feature")
    args = parser.parse_args(argv)
    if args.size is None:
        args.size = (
            36000 if args.nuclei is None else OFFSET + SPACING * math.ceil(math.sqrt(args.nuclei))
        )
    n = ((args.size - OFFSET) // SPACING) ** 2
    print(f"labels {args.size} x {args.size} uint32 (dask, chunks 2048, lazy), {n:,} nuclei")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "nuclei.geojson.gz"
        cmd = [sys.executable, "-c", _CODE, str(args.size), str(out)]
        cmd += [str(v) for v in (SPACING, OFFSET, RADIUS, JITTER)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"export failed: {res.stderr[-2000:]}")
        r = json.loads(res.stdout.strip().splitlines()[-1])
        r["features"] = check_features(out, n) if args.check else count_features(out)
        r["out_mb"] = out.stat().st_size / 1e6
    print(
        f"{r['seconds']:.1f} s, peak RSS {r['rss_mb']:.0f} MB (start {r['start_mb']:.0f} MB), "
        f"{r['features']:,} features{' (checked)' if args.check else ''}, {r['out_mb']:.1f} MB"
    )
    print(json.dumps(r))


if __name__ == "__main__":
    main()
