"""RLE throughput and streaming memory: ``napari_slideseg.io.rle`` vs the usual tools.

Run::

    python benchmarks/bench_rle.py                 # 10k x 10k mask, 50k x 50k dask mask
    python benchmarks/bench_rle.py --size 4000 --big 20000

Part 1 encodes and decodes one realistic binary mask (tissue-like blobs:
smoothed noise thresholded at low resolution and upsampled with ``np.repeat``)
and reports throughput in megapixels per second, the median of ``--repeats``
runs, for

* ours: :func:`rle_encode` / :func:`rle_decode` in both pixel orders, and
  :func:`coco_encode_compressed` / :func:`coco_decode`;
* the classic Kaggle NumPy snippet (``flatten`` + ``np.where`` on the padded
  array; decoding loops over the runs in Python);
* pycocotools ``mask.encode`` / ``mask.decode`` (its encoder needs a
  Fortran-ordered array: timed with the input already Fortran-ordered and with
  the ``np.asfortranarray`` copy a C-ordered mask needs).

Part 2 encodes a ``--big`` x ``--big`` mask that only exists as a lazy dask
array (each chunk generated from a seed, never materialised) with
:func:`rle_encode_dask`, in a fresh process per order so that the peak RSS
(``VmHWM``, else ``ru_maxrss``) belongs to the streaming encoder alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def make_mask(size: int, seed: int = 0, cell: int = 8) -> np.ndarray:
    """A ``size`` x ``size`` uint8 mask of blobs (about 30 % foreground)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    n = -(-size // cell)
    lo = gaussian_filter(rng.random((n, n)), sigma=max(2.0, n / 200))
    lo = lo > np.quantile(lo, 0.7)
    return lo.repeat(cell, 0).repeat(cell, 1)[:size, :size].astype(np.uint8)


def reference_encode(img: np.ndarray, order: str) -> str:
    """The classic Kaggle snippet."""
    pixels = img.flatten(order="F" if order == "col" else "C")
    pixels = np.concatenate([[0], pixels, [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)


def reference_decode(rle: str, shape: tuple[int, int], order: str) -> np.ndarray:
    """The classic Kaggle decoding loop."""
    s = rle.split()
    starts, lengths = (np.asarray(x, dtype=int) for x in (s[0::2], s[1::2]))
    starts -= 1
    ends = starts + lengths
    h, w = shape
    img = np.zeros(h * w, dtype=np.uint8)
    for lo, hi in zip(starts, ends, strict=True):
        img[lo:hi] = 1
    return img.reshape((w, h)).T if order == "col" else img.reshape((h, w))


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls, and the last result."""
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def bench_in_memory(size: int, repeats: int) -> dict[str, dict[str, float]]:
    import pycocotools.mask as cocomask

    from napari_slideseg.io.rle import coco_decode, coco_encode_compressed, rle_decode, rle_encode

    t0 = time.perf_counter()
    mask = make_mask(size)
    mpx = mask.size / 1e6
    print(
        f"mask {size} x {size}: {mask.mean():.1%} foreground, "
        f"made in {time.perf_counter() - t0:.1f} s"
    )
    res: dict[str, dict[str, float]] = {}

    def row(name: str, enc: Callable[[], Any], dec: Callable[[Any], Any], check: Any) -> None:
        te, encoded = timed(enc, repeats)
        td, decoded = timed(lambda: dec(encoded), repeats)
        if not np.array_equal(np.asarray(decoded).reshape(mask.shape), mask):
            raise AssertionError(f"{name}: decoded mask differs")
        if check is not None and check != encoded:
            raise AssertionError(f"{name}: encoding differs from ours")
        res[name] = {"encode": mpx / te, "decode": mpx / td, "enc_s": te, "dec_s": td}

    ours = {}
    for order in ("col", "row"):
        ours[order] = rle_encode(mask, order=order)
        row(
            f"ours rle {order}",
            lambda o=order: rle_encode(mask, order=o),
            lambda s, o=order: rle_decode(s, mask.shape, order=o),
            None,
        )
        row(
            f"reference {order}",
            lambda o=order: reference_encode(mask, o),
            lambda s, o=order: reference_decode(s, mask.shape, o),
            ours[order],
        )
    ours_coco = coco_encode_compressed(mask)
    row("ours coco", lambda: coco_encode_compressed(mask), coco_decode, None)
    fortran = np.asfortranarray(mask)
    ref = cocomask.encode(fortran)
    if ref["counts"].decode() != ours_coco["counts"]:
        raise AssertionError("pycocotools: compressed string differs from ours")
    row("pycocotools", lambda: cocomask.encode(fortran), cocomask.decode, None)
    te, _ = timed(lambda: cocomask.encode(np.asfortranarray(mask)), repeats)
    res["pycocotools+F copy"] = {"encode": mpx / te, "enc_s": te}
    res["_runs"] = {"col": len(ours["col"].split()) / 2, "row": len(ours["row"].split()) / 2}
    return res


def print_table(res: dict[str, dict[str, float]], size: int, repeats: int) -> None:
    runs = res.pop("_runs")
    print(
        f"\nthroughput, Mpx/s (median of {repeats}; {runs['col']:.0f} runs col, "
        f"{runs['row']:.0f} runs row)"
    )
    print(f"{'method':<22}{'encode':>10}{'decode':>10}{'enc s':>9}{'dec s':>9}")
    for name, r in res.items():
        dec, dec_s = (f"{r['decode']:.0f}", f"{r['dec_s']:.3f}") if "decode" in r else ("-", "-")
        print(f"{name:<22}{r['encode']:>10.0f}{dec:>10}{r['enc_s']:>9.3f}{dec_s:>9}")
    print("\nratios (ours / other; above 1 means ours is faster)")
    for order in ("col", "row"):
        o, ref = res[f"ours rle {order}"], res[f"reference {order}"]
        print(
            f"  rle {order} vs reference:   encode {o['encode'] / ref['encode']:5.1f}x   "
            f"decode {o['decode'] / ref['decode']:5.1f}x"
        )
    for name, o in (("rle col", res["ours rle col"]), ("coco", res["ours coco"])):
        p, pf = res["pycocotools"], res["pycocotools+F copy"]
        print(
            f"  {name:<7} vs pycocotools: encode {o['encode'] / p['encode']:5.1f}x "
            f"({o['encode'] / pf['encode']:.1f}x with the F copy)   "
            f"decode {o['decode'] / p['decode']:5.1f}x"
        )


# runs in a fresh interpreter: argv = size, chunk, order, cell
_DASK_SCRIPT = r"""
import json, resource, sys, time
import numpy as np
import psutil
import dask.array as da
from napari_slideseg.io.rle import rle_encode_dask

size, chunk, order, cell = (sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
size = int(size)
n = -(-size // cell)
rng = np.random.default_rng(7)
coarse = rng.random((n, n))
for _ in range(3):  # cheap smoothing of the tiny coarse grid
    coarse = (coarse + np.roll(coarse, 1, 0) + np.roll(coarse, 1, 1) + np.roll(coarse, -1, 0)
              + np.roll(coarse, -1, 1)) / 5
coarse = coarse > np.quantile(coarse, 0.7)

def block(block_info=None):
    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    ys = np.arange(y0, y1) // cell
    xs = np.arange(x0, x1) // cell
    return coarse[np.ix_(ys, xs)]

arr = da.map_blocks(block, chunks=((chunk,) * (size // chunk) + ((size % chunk,) if size % chunk else ()),) * 2,
                    dtype=bool, meta=np.empty((0, 0), bool))
def peak_mb():
    # VmHWM is this process's own high-water mark; ru_maxrss can carry over the
    # parent's RSS through fork + exec on Linux
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 2**20 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale

rss0 = psutil.Process().memory_info().rss / 2**20
t0 = time.perf_counter()
rles = rle_encode_dask(arr, order=order)
t = time.perf_counter() - t0
text = rles.get(1, "")
toks = np.array(text.split(), dtype=np.int64) if text else np.zeros(0, np.int64)
ext = np.minimum(cell, size - np.arange(n) * cell)
area = int((coarse * ext[:, None] * ext[None, :]).sum())
print(json.dumps({"seconds": t, "rss0_mb": rss0,
                  "peak_mb": peak_mb(),
                  "runs": int(toks.size // 2), "chars": len(text),
                  "area_ok": int(toks[1::2].sum()) == area}))
"""


def bench_dask(size: int, chunk: int, cell: int) -> None:
    print(
        f"\nrle_encode_dask on a lazy {size} x {size} bool mask "
        f"({size * size / 1e9:.1f} Gpx, chunks {chunk} x {chunk}, never materialised)"
    )
    print(
        f"{'order':<7}{'seconds':>9}{'Mpx/s':>9}{'runs':>11}{'RLE MB':>9}{'RSS start':>11}{'peak RSS':>10}"
    )
    for order in ("col", "row"):
        out = subprocess.run(
            [sys.executable, "-c", _DASK_SCRIPT, str(size), str(chunk), order, str(cell)],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode:
            print(out.stderr)
            raise SystemExit(f"dask benchmark ({order}) failed")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if not r["area_ok"]:
            raise AssertionError(f"dask {order}: foreground area differs from the generator's")
        print(
            f"{order:<7}{r['seconds']:>9.1f}{size * size / 1e6 / r['seconds']:>9.0f}"
            f"{r['runs']:>11}{r['chars'] / 2**20:>9.1f}{r['rss0_mb']:>9.0f}MB{r['peak_mb']:>8.0f}MB"
        )
    band = size * chunk
    print(f"(one band = {chunk} x {size} px = {band / 2**20:.0f} MB as bool)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=10000, help="side of the in-memory mask")
    p.add_argument("--repeats", type=int, default=3, help="runs per measurement (median)")
    p.add_argument("--big", type=int, default=50000, help="side of the lazy dask mask (0: skip)")
    p.add_argument("--chunk", type=int, default=1024, help="dask chunk side")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    res = bench_in_memory(args.size, args.repeats)
    print_table(res, args.size, args.repeats)
    if args.big:
        bench_dask(args.big, args.chunk, cell=256)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
