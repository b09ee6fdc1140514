"""Take the README screenshot headless: napari with the sample slide, glands and typed nuclei.

Run (Linux, no display needed)::

    xvfb-run -a .venv/bin/python scripts/screenshot.py [docs/screenshot.png]

It fills the demo cache (running the bundled models on first use), loads
*File > Open Sample > SlideSeg > H&E slide + demo predictions*, zooms to
the nuclei region and saves the window.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    import napari

    from napari_slideseg._sample_data import _demo_cached
    from napari_slideseg.demo import NUCLEI_REGION, run_demo
    from napari_slideseg.samples import demo_cache_dir

    # The sample computes an empty cache in the background; the screenshot needs the
    # layers now, so fill the cache first (in this process: napari is not up yet).
    if not _demo_cached(demo_cache_dir()):
        run_demo(demo_cache_dir())

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    viewer.open_sample("napari-slideseg", "cmu1_demo_predictions")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-slideseg", "Inference")
    widget.model.value = "hover-nuclei"  # the model that applies to this skin sample
    slide = viewer.layers[0]
    sy, sx = slide.scale[-2:]
    y0, x0, y1, x1 = NUCLEI_REGION
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.center = (0, (y0 + y1) / 2 * sy, (x0 + x1) / 2 * sx)
    camera.zoom = 0.8 / sy
    for layer in viewer.layers:
        if "centroids" in layer.name:
            layer.visible = False
        elif layer.name.startswith("nuclei"):
            layer.contour = 1  # outlines of each nucleus over the type colours
        elif layer.name.startswith("nucleus types"):
            layer.opacity = 0.6
    viewer.layers.selection.active = next(
        ly for ly in viewer.layers if ly.name.startswith("nuclei")
    )
    napari.qt.get_qapp().processEvents()
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    print(f"wrote {out}")
    viewer.close()


if __name__ == "__main__":
    main()
