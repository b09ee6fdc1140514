"""npe2 sample-data glue: the bundled H&E slide, alone or with the demo predictions."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .samples import SAMPLE_SLIDE, demo_cache_dir, sample_slide_path

logger = logging.getLogger(__name__)

__all__ = [
    "SAMPLE_SLIDE",
    "demo_cache_dir",
    "sample_slide",
    "sample_slide_path",
    "sample_slide_with_predictions",
]


def sample_slide() -> list[tuple[Any, ...]]:
    """The bundled CMU-1 small-region H&E slide as a multiscale Image layer.

    Returns
    -------
    list of tuple
        One ``(levels, kwargs, "image")`` layer tuple.
    """
    from .io.slide import open_slide
    from .layers import slide_layer

    return [slide_layer(open_slide(sample_slide_path()), name="CMU-1 small region")]


def sample_slide_with_predictions() -> list[tuple[Any, ...]]:
    """The sample slide plus the bundled nuclei model's typed nuclei on a region.

    The gland model is not run on this skin sample; a notification says why
    (:data:`napari_slideseg.demo.NO_GLANDS`).

    With the predictions cached, every layer is returned at once. The first
    time (an empty cache), inside napari, the slide is returned at once and
    the predictions are computed in a background worker with a progress bar
    in napari's activity dock; their layers are added when they are ready,
    so the viewer is never frozen. Without a viewer (a script), it computes
    them here first (about a minute on a CPU).

    Returns
    -------
    list of tuple
        The slide layer, then (when computed) the nucleus types, nuclei and
        centroid layers.
    """
    from .demo import NO_GLANDS
    from .io.slide import open_slide
    from .layers import slide_layer

    out = demo_cache_dir()  # this module's name, so tests can point it elsewhere
    base = slide_layer(open_slide(sample_slide_path()), name="CMU-1 small region")
    _tell(NO_GLANDS)
    if _demo_cached(out):
        return [base, *_prediction_layers(out, base)]
    viewer = _current_viewer()
    if viewer is None:
        from . import demo

        demo.run_demo(out, nuclei_region=demo.NUCLEI_REGION)
        return [base, *_prediction_layers(out, base)]
    _compute_in_background(viewer, out, base)
    return [base]


def _tell(message: str) -> None:
    """A napari notification (printed by napari when no viewer shows it)."""
    from napari.utils.notifications import show_info

    show_info(f"SlideSeg: {message}")


def _demo_cached(out: Path) -> bool:
    return (out / "overlay_nuclei.png").exists()


def _current_viewer() -> Any:
    try:
        import napari
    except ImportError:  # pragma: no cover - napari is what calls this
        return None
    return napari.current_viewer()


#: Workers computing demo predictions (kept referenced until they finish).
_WORKERS: list[Any] = []


def _demo_process_events(out: Path, region: Any, procs: list[Any], base: tuple[Any, ...]) -> Any:
    """Run the demo in a child process; yield its progress; return the layer tuples.

    A generator for a napari worker thread: it only reads the child's JSON
    lines, and builds the layer tuples (zarr, tables) once the child is done,
    so napari's process never imports torch and its event loop never waits.
    """
    import json
    import subprocess
    import sys

    from .progress import Progress

    cmd = [
        sys.executable,
        "-c",
        "import sys; from napari_slideseg.demo import run_demo_json_lines as r; "
        "sys.exit(r(sys.argv[1], sys.argv[2]))",
        str(out),
        json.dumps(list(region) if region else None),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(proc)
    error = None
    try:
        if proc.stdout is None:  # never: stdout is a pipe (this narrows its type)
            raise RuntimeError("the demo process has no output pipe")
        for line in proc.stdout:
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                logger.debug("demo process: skipping a line that is not JSON: %r", line)
                continue
            if "progress" in msg:
                p = msg["progress"]
                yield Progress(p["stage"], p["done"], p["total"], p["message"])
            elif "error" in msg:
                error = msg["error"]
        proc.wait()
    finally:
        if proc.poll() is None:  # napari closed or the worker was stopped
            proc.kill()
            proc.wait()
    if proc.returncode != 0 or not _demo_cached(out):
        tail = (proc.stderr.read() if proc.stderr else "")[-500:]
        raise RuntimeError(error or f"the demo process exited with {proc.returncode}: {tail}")
    return _prediction_layers(out, base)  # opened here, in the worker thread


def _compute_in_background(viewer: Any, out: Path, base: tuple[Any, ...]) -> Any:
    """Compute the demo predictions in a child process; add their layers to ``viewer``."""
    from napari.qt.threading import create_worker
    from napari.utils import progress
    from napari.utils.notifications import show_error, show_info
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from . import demo
    from .progress import Progress

    bar = progress(total=0, desc="SlideSeg demo predictions")
    show_info(
        "SlideSeg: computing the demo predictions in the background (about a minute on a "
        "CPU, once); their layers appear when they are ready"
    )
    procs: list[Any] = []
    worker = create_worker(_demo_process_events, out, demo.NUCLEI_REGION, procs, base)

    def on_yield(event: Any) -> None:
        if isinstance(event, Progress) and event.total:
            bar.total = event.total
            bar.n = min(event.done, event.total)
            bar.set_description(f"SlideSeg demo: {event.message}"[:80])
            bar.refresh()

    def on_done(tuples: Any) -> None:
        # one layer per turn of the event loop: napari builds each layer's visuals here
        pending = list(tuples)

        def add_next() -> None:
            if pending:
                data, kwargs, kind = pending.pop(0)
                getattr(viewer, f"add_{kind}")(data, **kwargs)
                QTimer.singleShot(0, add_next)

        add_next()

    def on_error(exc: BaseException) -> None:
        show_error(f"SlideSeg demo predictions failed: {exc}")

    def on_finished() -> None:
        bar.close()
        if worker in _WORKERS:
            _WORKERS.remove(worker)

    def stop_child() -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()

    worker.yielded.connect(on_yield)
    worker.returned.connect(on_done)
    worker.errored.connect(on_error)
    worker.finished.connect(on_finished)
    app = QApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(stop_child)
    _WORKERS.append(worker)
    worker.start()
    return worker


def _prediction_layers(out: Path, base: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Layer tuples of the cached demo predictions, placed on the slide layer ``base``."""
    from .layers import centroid_points, prediction_layers

    scale = tuple(base[1].get("scale", (1.0, 1.0)))
    layers: list[tuple[Any, ...]] = []
    nuclei = prediction_layers(out / "nuclei.zarr", base_scale=scale)
    layers += nuclei
    layers.append(
        centroid_points(
            out / "nuclei.zarr",
            scale=tuple(nuclei[0][1]["scale"]),
            features=nuclei[1][1].get("features"),
        )
    )
    units = base[1].get("units")
    if units:
        for _, kwargs, _ in layers:
            kwargs["units"] = units
    return layers
