"""Shared pieces of the dock widgets: layer adapters and a generator runner.

Widgets stay thin: they build one config object from their fields, call one
core generator, and map its :class:`~napari_slideseg.progress.Progress`
events to a progress bar. :class:`GeneratorRunner` owns the worker thread,
the Run/Cancel toggle and error notifications, so no widget repeats that.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, FileEdit, Label, ProgressBar, PushButton

from ..io.errors import SlideSegError
from ..progress import Progress

logger = logging.getLogger(__name__)


def layer_to_slide(layer: Any) -> Any:
    """The :class:`~napari_slideseg.io.slide.Slide` behind an Image layer.

    Layers opened by this plugin carry their file path and are reopened
    lazily; any other image layer (or one whose file is gone) is wrapped as
    an in-memory slide. The layer's scale, when in micrometres, is the µm
    per pixel of an in-memory slide, or of a file that states none.

    Parameters
    ----------
    layer : napari.layers.Image
        The layer.

    Returns
    -------
    Slide
        The slide.
    """
    from ..io.slide import open_slide, slide_from_arrays

    meta = (layer.metadata or {}).get("slideseg") or {}
    path = meta.get("path")
    mpp = None
    units = [str(u) for u in getattr(layer, "units", ())]
    if units and all(u == "micrometer" for u in units[-2:]):
        mpp = (float(layer.scale[-2]), float(layer.scale[-1]))
    if path and not os.path.exists(path):
        logger.info("%s: not found; using the layer's own data instead", path)
    if path and os.path.exists(path):
        slide = open_slide(path)
        # a resolution the user gave the layer (a JPEG tile has none in the file)
        return slide.with_mpp(mpp) if mpp and not slide.mpp else slide
    data = list(layer.data) if layer.multiscale else [layer.data]
    return slide_from_arrays(data, name=layer.name, mpp=mpp)


def guard_torch_imports() -> None:
    """Hide triton where there is no NVIDIA GPU (done at package import; kept for callers).

    See :mod:`napari_slideseg._torch_guard`.
    """
    from .._torch_guard import hide_triton_without_gpu

    hide_triton_without_gpu()


def edit_path(edit: FileEdit) -> Path:
    """The path a one-path :class:`~magicgui.widgets.FileEdit` holds.

    Parameters
    ----------
    edit : FileEdit
        A file edit in a one-path mode (``"r"``, ``"w"`` or ``"d"``) that is
        not nullable: its value is always a ``Path`` (``"."`` when empty).

    Returns
    -------
    Path
        The field's path.

    Raises
    ------
    TypeError
        For a several-files edit (mode ``"rm"``) or an empty nullable one.
    """
    value = edit.value
    if not isinstance(value, Path):
        raise TypeError(f"{edit.label}: expected one path, not {value!r}")
    return value


def labels_level0(layer: Any) -> Any:
    """Level-0 data of a Labels layer (multiscale or not).

    Parameters
    ----------
    layer : napari.layers.Labels
        The layer.

    Returns
    -------
    array
        Its full-resolution data.
    """
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def notify_error(message: str) -> None:
    """Show ``message`` as a napari error notification.

    Parameters
    ----------
    message : str
        The text.
    """
    from napari.utils.notifications import show_error

    show_error(message)


def notify_warning(message: str) -> None:
    """Show ``message`` as a napari warning notification.

    Parameters
    ----------
    message : str
        The text.
    """
    from napari.utils.notifications import show_warning

    show_warning(message)


def notify_info(message: str) -> None:
    """Show ``message`` as a napari information notification.

    Parameters
    ----------
    message : str
        The text.
    """
    from napari.utils.notifications import show_info

    show_info(message)


class LayerChoice(ComboBox):
    """A combo box listing the viewer's layers of one type, kept up to date.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layers are listed.
    layer_type : str
        Lower-case layer class name (``"image"``, ``"labels"``, ``"shapes"``).
    label : str
        The field's label.
    optional : bool
        Offer "no layer" (None) first.
    """

    def __init__(self, viewer: Any, layer_type: str, label: str, optional: bool = False) -> None:
        self._viewer = viewer
        self._type = layer_type
        self._optional = optional
        super().__init__(label=label, choices=self._names)
        for ev in (viewer.layers.events.inserted, viewer.layers.events.removed):
            ev.connect(lambda *_: self.reset_choices())

    def _names(self, *_: Any) -> list[Any]:
        names = [ly.name for ly in self._viewer.layers if type(ly).__name__.lower() == self._type]
        return [None, *names] if self._optional else names

    @property
    def layer(self) -> Any:
        """The chosen layer, or None."""
        name = self.value
        return next((ly for ly in self._viewer.layers if ly.name == name), None)


#: Widest a dock widget grows (px): long messages wrap instead of squeezing the canvas.
MAX_DOCK_WIDTH = 460


def bound_width(container: Any, *labels: Label) -> None:
    """Keep a dock widget at most :data:`MAX_DOCK_WIDTH` wide; ``labels`` wrap their text.

    Parameters
    ----------
    container : magicgui.widgets.Container
        The dock widget.
    *labels : Label
        Labels whose long text wraps.
    """
    from qtpy.QtWidgets import QSizePolicy

    container.native.setMaximumWidth(MAX_DOCK_WIDTH)
    for label in labels:
        label.native.setWordWrap(True)
        label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)


class _Failed:
    """An exception raised inside a job, carried out as its return value.

    superqt's worker swallows a ``RuntimeError`` raised by a job and never
    emits ``finished`` (the Run button would stay "Cancel" for good), so
    jobs never raise: the runner gets this instead and reports it.
    """

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_CANCELLED = object()


class GeneratorRunner:
    """Run a core progress generator in a napari worker thread.

    The Run button turns into Cancel while a job runs; Cancel closes the
    generator at its next event, **in the worker thread** (core generators
    clean up in ``finally``, and torch's grad / inference mode is per thread:
    a generator closed elsewhere would leave the pool thread in inference
    mode and break the next training job). Every error, core or not, ends
    the job with a notification and the widget stays usable; warnings
    (``UserWarning``) raised in the job become warning notifications.

    Parameters
    ----------
    button : PushButton
        The Run button (its text toggles).
    progress : ProgressBar
        A magicgui ``ProgressBar``.
    status : Label
        A ``Label`` for the latest message.
    on_event : callable, optional
        Called in the GUI thread with every non-Progress item the generator yields.
    on_done : callable, optional
        Called in the GUI thread with the generator's return value.
    on_progress : callable, optional
        Called in the GUI thread with every Progress event (e.g. to plot curves).
    run_text : str
        The button's text when no job runs.
    fraction : callable, optional
        ``fraction(event)``: the share of the whole job done (the bar then
        counts to 1000), or None to show the event's own ``done/total``.
    """

    def __init__(
        self,
        button: PushButton,
        progress: ProgressBar,
        status: Label,
        *,
        on_event: Callable[[Any], None] | None = None,
        on_done: Callable[[Any], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        run_text: str = "Run",
        fraction: Callable[[Progress], float | None] | None = None,
    ) -> None:
        self.button, self.progress, self.status = button, progress, status
        self.on_event, self.on_done, self.on_progress = on_event, on_done, on_progress
        self.run_text = run_text
        self.fraction = fraction
        self.worker: Any = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.cancelled = False
        self._cancel_requested = False

    @property
    def running(self) -> bool:
        """Whether a job is running."""
        return self.worker is not None

    def start(self, make_generator: Callable[[], Generator[Any, None, Any]]) -> Any:
        """Start ``make_generator()`` in a worker thread.

        Parameters
        ----------
        make_generator : callable
            Builds the generator (called in the worker thread: its errors are
            reported like the job's).

        Returns
        -------
        GeneratorWorker
            The worker (the running one when a job already runs).
        """
        from napari.qt.threading import GeneratorWorker

        if self.running:
            return self.worker
        self.result, self.error, self.cancelled = None, None, False
        self._cancel_requested = False

        def work() -> Generator[Any, None, Any]:
            gen = None
            try:
                gen = make_generator()
                while True:
                    try:
                        item = next(gen)
                    except StopIteration as stop:
                        return stop.value
                    yield item
                    if self._cancel_requested:
                        return _CANCELLED
            except Exception as exc:  # every error ends the job with a notification
                return _Failed(exc)
            finally:
                if gen is not None and hasattr(gen, "close"):
                    gen.close()  # here, in the worker thread

        worker = GeneratorWorker(work)
        worker.yielded.connect(self._yielded)
        worker.returned.connect(self._returned)
        worker.errored.connect(self._errored)
        worker.aborted.connect(self._aborted)
        worker.warned.connect(self._warned)
        worker.finished.connect(self._finished)
        self.worker = worker
        self.button.text = "Cancel"
        self.status.value = "running..."
        self.progress.value = 0
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the job at its next event (it closes itself in the worker thread)."""
        if self.worker is not None:
            self.cancelled = True
            self._cancel_requested = True
            self.status.value = "cancelling..."

    def toggle(self, make_generator: Callable[[], Generator[Any, None, Any]]) -> None:
        """What the Run/Cancel button does: cancel the running job, or start one.

        Parameters
        ----------
        make_generator : callable
            Builds the job's generator.
        """
        if self.running:
            self.cancel()
        else:
            try:
                self.start(make_generator)
            except Exception as err:
                self._report(err)

    # -- slots (GUI thread) ---------------------------------------------------------
    def _yielded(self, item: Any) -> None:
        if isinstance(item, Progress):
            share = self.fraction(item) if self.fraction is not None else None
            if share is not None:
                self.progress.max = 1000
                self.progress.value = round(1000 * min(max(share, 0.0), 1.0))
            elif item.total:
                self.progress.max = item.total
                self.progress.value = min(item.done, item.total)
            self.status.value = item.message or item.stage
            if self.on_progress is not None:
                self.on_progress(item)
        elif self.on_event is not None:
            self.on_event(item)

    def _returned(self, value: Any) -> None:
        if isinstance(value, _Failed):
            self._errored(value.exc)
            return
        if value is _CANCELLED:
            self._aborted()
            return
        self.result = value
        if self.on_done is not None:
            try:
                self.on_done(value)
            except Exception as exc:  # showing the result failed: say so, stay usable
                self._errored(exc)

    def _errored(self, exc: BaseException) -> None:
        self.error = exc
        self._report(exc)

    def _report(self, exc: BaseException) -> None:
        text = str(exc) if isinstance(exc, SlideSegError) else f"{type(exc).__name__}: {exc}"
        self.status.value = f"error: {text}"
        notify_error(text)

    def _warned(self, warning: Any) -> None:
        message, category = warning[0], warning[1]
        if isinstance(category, type) and issubclass(category, UserWarning):
            notify_warning(str(message))
        else:  # deprecations and the like are for developers, not a notification
            logger.debug("job warning not shown: %s", message)

    def _aborted(self) -> None:
        self.status.value = "cancelled"

    def _finished(self) -> None:
        self.worker = None
        self.button.text = self.run_text
