"""Time and peak RSS of exporting millions of nuclei to QuPath GeoJSON.gz.

Run::

    python benchmarks/bench_geojson.py                   # 36000 x 36000, 5.06 M nuclei
    python benchmarks/bench_geojson.py --size 12000      # 0.56 M nuclei
    python benchmarks/bench_geojson.py --nuclei 100000   # the size that holds ~100k nuclei
    python benchmarks/bench_geojson.py --size 12000 --check
    python benchmarks/bench_geojson.py --hover           # a HoVer prediction's export, 5.06 M
    python benchmarks/bench_geojson.py --hover --size 12000 --check
    python benchmarks/bench_geojson.py --hover rle --size 12000   # or: table

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

``--hover`` measures what users run instead: the export of a HoVer
prediction folder, :func:`napari_slideseg.infer.hover.export_instances_steps`
to ``nuclei.geojson.gz`` (``--hover rle``: ``nuclei.csv``, ``--hover table``:
the table), with every nucleus's type (classification: name and colour),
type probability and areas as properties. The folder is built first, in
its own process and not timed: the attributes are those ``predict_slide``
writes (taken from a real run of the bundled HoVer model on a 256-pixel
region of the sample slide, then given the synthetic size), the
``instances`` array is the map above written as zarr chunks of 2048 (one
chunk generated at a time), and ``instances.csv`` has the merged table's
columns for every nucleus (its centroid, box and 81-pixel area, a type and
a type probability drawn from its id, the micrometre columns at the real
run's mpp), written a million rows at a time. ``--check`` also checks that
every feature carries its row's type and probability.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Grid spacing, first cell's offset, disc radius and jitter of the nuclei.
SPACING, OFFSET, RADIUS, JITTER = 16, 7, 5, 2

#: The nuclei: one disc per grid cell; ``grid(...)`` gives the count, the centres and blocks.
_GRID = r"""
import numpy as np

def grid(size, S, O, R, J):
    n = (size - O) // S  # cells per side
    dy, dx = np.mgrid[-R : R + 1, -R : R + 1]
    disc = dy * dy + dx * dx <= R * R
    ody, odx = dy[disc], dx[disc]

    def jitter(r, c, salt):
        h = (r * 73856093) ^ (c * 19349663) ^ salt
        return (h % (2 * J + 1)) - J

    def centres(rr, cc):
        return O + rr * S + S // 2 + jitter(rr, cc, 0), O + cc * S + S // 2 + jitter(rr, cc, 83492791)

    def block(y0, y1, x0, x1):
        b = np.zeros((y1 - y0, x1 - x0), np.uint32)
        r = np.arange(max(0, (y0 - O) // S - 1), min(n, (y1 - O) // S + 2))
        c = np.arange(max(0, (x0 - O) // S - 1), min(n, (x1 - O) // S + 2))
        if not r.size or not c.size:
            return b
        rr, cc = (a.ravel() for a in np.meshgrid(r, c, indexing="ij"))
        cy, cx = centres(rr, cc)
        ys = (cy[:, None] + ody[None]).ravel() - y0
        xs = (cx[:, None] + odx[None]).ravel() - x0
        ids = np.repeat((rr * n + cc + 1).astype(np.uint32), ody.size)
        keep = (ys >= 0) & (ys < b.shape[0]) & (xs >= 0) & (xs < b.shape[1])
        b[ys[keep], xs[keep]] = ids[keep]
        return b

    return n, centres, block
"""

_CODE = (
    _GRID
    + r"""
import json, sys, time
from pathlib import Path
import dask.array as da

size, out = int(sys.argv[1]), Path(sys.argv[2])
n, _, cells = grid(size, *(int(v) for v in sys.argv[3:7]))
chunk = 2048

def block(block_info=None):
    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    return cells(y0, y1, x0, x1)

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
)


#: Builds the HoVer prediction folder (not timed): argv size, folder, S, O, R, J.
_BUILD = (
    _GRID
    + r"""
import sys
from pathlib import Path
import pandas as pd
import zarr

size, pred = int(sys.argv[1]), Path(sys.argv[2])
n, centres, block = grid(size, *(int(v) for v in sys.argv[3:7]))

from napari_slideseg.infer import InferConfig, predict_slide
from napari_slideseg.infer.hover import TABLE_COLUMNS, UM_COLUMNS
from napari_slideseg.io.slide import open_slide
from napari_slideseg.models.bundled import bundled_models
from napari_slideseg.samples import sample_slide_path

real = pred.with_name("real.zarr")
cfg = InferConfig(region=(2500, 600, 2756, 856), block=256, instance_halo=32, device="cpu")
predict_slide(open_slide(sample_slide_path()), [bundled_models()["hover-nuclei"]], real, cfg)
attrs = dict(zarr.open_group(str(real), mode="r").attrs)
info = dict(attrs["slideseg_inference"])
info.update(level=0, level_factors=[1.0, 1.0], level_shape=[size, size], slide_shape=[size, size])
info["complete"] = True
attrs["slideseg_inference"] = info
mpp = info.get("mpp") or [0.25, 0.25]
names = list(attrs["slideseg"]["classmap"]["names"])

root = zarr.open_group(str(pred), mode="w")
root.attrs.update(attrs)
chunk = 2048
arr = root.create_array("instances", shape=(size, size), chunks=(chunk, chunk), dtype="uint32", fill_value=0)
for y0 in range(0, size, chunk):
    for x0 in range(0, size, chunk):
        y1, x1 = min(size, y0 + chunk), min(size, x0 + chunk)
        arr[y0:y1, x0:x1] = block(y0, y1, x0, x1)

step = 1 << 20
with open(pred / "instances.csv", "w", newline="") as fh:
    for k0 in range(0, n * n, step):
        k = np.arange(k0, min(n * n, k0 + step))
        rr, cc = k // n, k % n
        cy, cx = centres(rr, cc)
        ids = k + 1
        t = 1 + (ids * 2654435761 % 2**32) % (len(names) - 1)
        cols = {
            "id": ids, "centroid_y": cy.astype(float), "centroid_x": cx.astype(float),
            "bbox_y0": cy - 5, "bbox_x0": cx - 5, "bbox_y1": cy + 6, "bbox_x1": cx + 6,
            "area": np.full(len(k), 81), "type": t, "type_name": np.asarray(names, object)[t],
            "type_prob": np.round(0.4 + (ids * 40503 % 6000) / 10000, 4),
            "centroid_y_um": np.round(cy * mpp[0], 3), "centroid_x_um": np.round(cx * mpp[1], 3),
            "area_um2": np.round(np.full(len(k), 81.0) * mpp[0] * mpp[1], 3),
        }
        frame = pd.DataFrame(cols, columns=list(TABLE_COLUMNS + UM_COLUMNS))
        frame.to_csv(fh, index=False, header=k0 == 0, lineterminator="\r\n")
print("built")
"""
)

#: Times the export of that folder in a fresh process: argv folder, output, what.
_HOVER = r"""
import json, sys, time
from pathlib import Path

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024

from napari_slideseg.infer.hover import export_instances_steps
from napari_slideseg.progress import drain
pred, out, what = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
base = hwm()
t0 = time.perf_counter()
drain(export_instances_steps(pred, out, what=what))
t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "rss_mb": hwm(), "start_mb": base}))
"""


def _lines(path: Path):
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        yield from fh


def count_features(path: Path) -> int:
    """Features in a file the writer made: one per line between the header and the tail."""
    n = sum(1 for _ in _lines(path))
    return max(0, n - 2)


def _check_hover_properties(props: dict) -> None:
    """A HoVer export's feature carries its row's type, type probability and areas."""
    i = props["id"]
    assert props["objectType"] == "detection", props
    assert props["classification"]["name"] and len(props["classification"]["color"]) == 3, props
    assert props["class_index"] >= 1, props
    assert props["type_probability"] == round(0.4 + (i * 40503 % 6000) / 10000, 4), props
    assert props["area_px"] == 81 and props["area_um2"] > 0, props


def check_features(path: Path, nuclei: int, hover: bool = False) -> int:
    """Decode every feature; each id 1..nuclei once, each polygon of 81 pixels' area.

    ``hover``: each also has the properties of its row of the synthetic table.
    """
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
        if hover:
            _check_hover_properties(f["properties"])
        n += 1
    assert n == nuclei and seen[1:].all(), f"{n} features for {nuclei} nuclei"
    return n


def _run(cmd: list[str], step: str) -> dict:
    """Run ``cmd`` (a fresh Python); the JSON of its last line, if it printed one."""
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"{step} failed: {res.stderr[-2000:]}")
    last = res.stdout.strip().splitlines()[-1]
    return json.loads(last) if last.startswith("{") else {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=None, help="edge in pixels (default 36000)")
    parser.add_argument("--nuclei", type=int, default=None, help="about this many nuclei")
    parser.add_argument("--check", action="store_true", help="decode and verify every feature")
    parser.add_argument(
        "--hover",
        nargs="?",
        const="geojson",
        choices=("geojson", "rle", "table"),
        help="time a HoVer prediction folder's export instead (default geojson)",
    )
    args = parser.parse_args(argv)
    if args.size is None:
        args.size = (
            36000 if args.nuclei is None else OFFSET + SPACING * math.ceil(math.sqrt(args.nuclei))
        )
    n = ((args.size - OFFSET) // SPACING) ** 2
    grid = [str(v) for v in (SPACING, OFFSET, RADIUS, JITTER)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / ("nuclei.geojson.gz" if args.hover in (None, "geojson") else "nuclei.csv")
        if args.hover:
            print(f"HoVer prediction {args.size} x {args.size} (zarr, chunks 2048), {n:,} nuclei")
            pred = Path(tmp) / "pred.zarr"
            t0 = time.perf_counter()
            _run([sys.executable, "-c", _BUILD, str(args.size), str(pred), *grid], "build")
            print(f"built in {time.perf_counter() - t0:.0f} s; exporting {args.hover}")
            r = _run([sys.executable, "-c", _HOVER, str(pred), str(out), args.hover], "export")
            r["nuclei"] = n
        else:
            print(
                f"labels {args.size} x {args.size} uint32 (dask, chunks 2048, lazy), {n:,} nuclei"
            )
            r = _run([sys.executable, "-c", _CODE, str(args.size), str(out), *grid], "export")
        if out.name.endswith(".csv"):
            with open(out) as fh:
                r["features"] = sum(1 for _ in fh) - 1  # rows after the header
        elif args.check:
            r["features"] = check_features(out, n, hover=bool(args.hover))
        else:
            r["features"] = count_features(out)
        r["out_mb"] = out.stat().st_size / 1e6
    print(
        f"{r['seconds']:.1f} s, peak RSS {r['rss_mb']:.0f} MB (start {r['start_mb']:.0f} MB), "
        f"{r['features']:,} features{' (checked)' if args.check else ''}, {r['out_mb']:.1f} MB"
    )
    print(json.dumps(r))


if __name__ == "__main__":
    main()
