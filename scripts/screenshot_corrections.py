"""Take the README's corrections screenshot headless: painted fixes and their outlines.

Run (Linux, no display needed)::

    xvfb-run -a .venv/bin/python scripts/screenshot_corrections.py [docs/corrections.png]

It predicts nuclei with the bundled ``hover-nuclei`` model on a 512 px
square of the bundled sample (into a temporary folder), opens the
prediction with the plugin, starts tracking its corrections, paints two
nuclei and erases one the way a brush would (``data_setitem``: the edit
napari's paint tools make), saves, and saves the window with the
*corrected regions* outline layer on top.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np


def _disk(cy: int, cx: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    keep = yy**2 + xx**2 <= r * r
    return yy[keep] + cy, xx[keep] + cx


def main() -> None:
    import napari

    from napari_slideseg._widgets.corrections import track_corrections
    from napari_slideseg.demo import NUCLEI_REGION
    from napari_slideseg.infer import InferConfig, predict_slide
    from napari_slideseg.io.slide import open_slide
    from napari_slideseg.samples import sample_slide_path

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/corrections.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    y0, x0 = NUCLEI_REGION[:2]
    region = (y0, x0, y0 + 512, x0 + 512)
    slide = open_slide(sample_slide_path())
    pred = tmp / "nuclei.zarr"
    predict_slide(slide, "hover-nuclei", pred, InferConfig(region=region, device="cpu"))

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    viewer.open(str(sample_slide_path()), plugin="napari-slideseg")
    layers = viewer.open(str(pred), plugin="napari-slideseg")
    nuclei = next(ly for ly in layers if ly.name.startswith("nuclei "))
    tracker = track_corrections(viewer, nuclei, debounce_ms=0)
    layer = tracker.layer
    ids = np.array(layer.data)  # a copy: only the layer's own edits change its data
    top = int(ids.max())
    ys, xs = np.nonzero(ids)
    cy, cx = int(ys.mean()), int(xs.mean())
    # one nucleus the model found, erased (as if it were a false one) ...
    near = ids[cy - 40 : cy + 40, cx - 40 : cx + 40]
    victim = int(np.bincount(near[near > 0]).argmax())
    layer.data_setitem(np.nonzero(ids == victim), 0)
    # ... and two it missed, painted on tissue where it found none
    pixels = slide.read_region(0, cy - 150, cx - 150, 300, 300).mean(axis=2)
    painted = 0
    rng = np.random.default_rng(1)
    for dy, dx in rng.integers(-120, 121, size=(400, 2)):
        py, px = cy + int(dy), cx + int(dx)
        empty = not ids[py - 14 : py + 15, px - 14 : px + 15].any()
        if empty and pixels[150 + dy, 150 + dx] < 170:
            layer.data_setitem(_disk(py, px, 8), top + 1 + painted)
            ids[py - 14 : py + 15, px - 14 : px + 15] = 1  # not twice in one place
            painted += 1
            if painted == 2:
                break
    tracker.save()
    slide_layer = viewer.layers[0]
    sy, sx = slide_layer.scale[-2:]
    camera = viewer.camera
    camera.center = (cy * sy, cx * sx)
    camera.zoom = 1.5 / sy
    layer.contour = 1
    for ly in viewer.layers:
        if "centroids" in ly.name or ly.name == "nucleus types (nuclei)":
            ly.visible = False
    napari.qt.get_qapp().processEvents()
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    print(f"wrote {out}; corrected regions: {tracker.store.regions(tracker.array)}")
    viewer.close()


if __name__ == "__main__":
    main()
