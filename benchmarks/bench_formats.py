"""Random level-0 reads on real NDPI files by each backend: ms per read and dask chunk counts.

Run::

    python benchmarks/bench_formats.py                  # 200 reads of 512 x 512 per backend
    python benchmarks/bench_formats.py --reads 50 --size 1024
    python benchmarks/bench_formats.py --files path/to/slide.ndpi

What is measured: ``open_slide(path, backend=name)`` with no other option
(the chunking a user gets with that backend), then ``slide.read_region(0,
y, x, size, size)`` at ``--reads`` random places (the same places for
every backend, seed 0): the path napari's panning and every block read of
``predict`` and ``patch`` take (dask over the backend's chunks, the
threaded scheduler). Each backend is timed in a fresh process so that no
decoded tile is cached from another backend's run; the first read (which
opens decoders) is timed with the rest. Reported per backend: median and
90th percentile ms per read, and the number of dask chunks of each level.
The script checks that both backends return the same pixels for the first
read, and says which backend ``open_slide`` picks by default and whether it
is the faster one (exit status 1 if not).

The files default to the two real NDPI files in ``../shared/data/wsi_formats/ndpi``
("Sample Hamamatsu NDPI files (c) by Manuel Stritt", CC BY 4.0), else the
copy in ``tests/data/wsi_formats/ndpi``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "wsi_formats" / "ndpi"
LOCAL = ROOT / "tests" / "data" / "wsi_formats" / "ndpi"
BACKENDS = ("tifffile", "openslide")

_CHILD = """
import json, sys, time
import numpy as np
from napari_slideseg.io.slide import open_slide
path, backend, reads, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
slide = open_slide(path, backend=backend)
h, w = slide.levels[0].shape[:2]
rng = np.random.default_rng(0)
places = [(int(rng.integers(0, h - size)), int(rng.integers(0, w - size))) for _ in range(reads)]
times = []
first = None
for y, x in places:
    t = time.perf_counter()
    px = slide.read_region(0, y, x, size, size)
    times.append((time.perf_counter() - t) * 1000)
    if first is None:
        first = px
print(json.dumps({
    "backend": slide.backend,
    "ms": times,
    "chunks": [int(np.prod(lv.numblocks)) for lv in slide.levels],
    "chunk": list(slide.levels[0].chunksize[:2]),
    "levels": slide.n_levels,
    "checksum": int(first.astype(np.uint64).sum()),
}))
"""


def _run(path: Path, backend: str, reads: int, size: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), backend, str(reads), str(size)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _default_backend(path: Path) -> str:
    from napari_slideseg.io.slide import open_slide

    return open_slide(path).backend


def main(argv: list[str] | None = None) -> int:
    """Time every backend on every file; 1 when the default is not the fastest."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reads", type=int, default=200)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--files", nargs="*", type=Path)
    args = p.parse_args(argv)
    files = args.files or sorted(SHARED.glob("*.ndpi")) or sorted(LOCAL.glob("*.ndpi"))
    ok = True
    for path in files:
        print(f"{path.name}: {args.reads} random {args.size}^2 level-0 reads")
        res = {b: _run(path, b, args.reads, args.size) for b in BACKENDS}
        medians = {}
        for b, r in res.items():
            med = statistics.median(r["ms"])
            p90 = statistics.quantiles(r["ms"], n=10)[-1]
            medians[b] = med
            print(
                f"  {b:<10} median {med:7.2f} ms  p90 {p90:7.2f} ms  "
                f"chunk {r['chunk'][0]} x {r['chunk'][1]}, chunks per level {r['chunks']}"
            )
        same = len({r["checksum"] for r in res.values()}) == 1
        default = _default_backend(path)
        fastest = min(medians, key=medians.get)
        ratio = max(medians.values()) / min(medians.values())
        print(
            f"  same pixels: {same}; default backend: {default}; fastest: {fastest} ({ratio:.1f}x)"
        )
        ok &= same and default == fastest
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
