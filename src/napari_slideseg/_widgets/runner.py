"""Running a core generator from a dock widget: :class:`GeneratorRunner`, :class:`JobWidget`.

Widgets stay thin: they build one config object from their fields, call one
core generator, and map its :class:`~napari_slideseg.progress.Progress`
events to a progress bar. :class:`GeneratorRunner` owns the worker thread,
the Run/Cancel toggle and error notifications, and :class:`JobWidget` the
Run button, progress bar and status line around it, so no widget repeats
that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Sequence
from typing import Any

from magicgui.widgets import Container, Label, ProgressBar, PushButton, Widget

from ..io.errors import SlideSegError
from ..progress import Progress
from ._common import bound_width, guard_torch_imports, notify_error, notify_warning

logger = logging.getLogger(__name__)


class _Failed:
    """An exception raised inside a job, carried out as its return value.

    superqt's worker swallows a ``RuntimeError`` raised by a job and never
    emits ``finished`` (the Run button would stay "Cancel" for good), so
    jobs never raise: the runner gets this instead and reports it.
    """

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_CANCELLED = object()
#: Refresh a live result layer at most this often (seconds).
REFRESH_EVERY = 0.5


def gui_threads() -> int:
    """Torch CPU threads for a job run from a dock widget: every core but one, for the GUI.

    Returns
    -------
    int
        At least 1.
    """
    import os

    return max(1, (os.cpu_count() or 2) - 1)


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


class JobWidget(Container):
    """A dock widget that runs one core generator job, with Run/Cancel, progress and status.

    A subclass makes its fields and hands them to :meth:`lay_out`, which
    puts the Run button, the progress bar and the status line below them
    and makes the button start :meth:`job` in a worker thread (through
    :attr:`runner`), or cancel it while it runs.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    guard_torch : bool
        Call :func:`~napari_slideseg._widgets._common.guard_torch_imports`
        first (widgets whose jobs run torch).
    """

    def __init__(self, viewer: Any, *, guard_torch: bool = False) -> None:
        super().__init__(labels=True)
        if guard_torch:
            guard_torch_imports()
        self.viewer = viewer
        self.run_button = PushButton(text="Run")
        self.progress = ProgressBar(value=0, max=1, label="progress")
        self.status = Label(value="")
        self.runner: GeneratorRunner  # made by lay_out

    def lay_out(
        self,
        fields: Sequence[Widget],
        *,
        after: Sequence[Widget] = (),
        wrap: Sequence[Label] = (),
        on_done: Callable[[Any], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        fraction: Callable[[Progress], float | None] | None = None,
    ) -> None:
        """Show ``fields``, then Run, progress and status, then ``after``; Run starts :meth:`job`.

        Parameters
        ----------
        fields : sequence of Widget
            The widget's fields, top to bottom.
        after : sequence of Widget
            Widgets below the status line.
        wrap : sequence of Label
            Labels besides the status line whose long text wraps.
        on_done, on_progress, fraction : callable, optional
            The runner's hooks (see :class:`GeneratorRunner`).
        """
        self.extend([*fields, self.run_button, self.progress, self.status, *after])
        self.runner = GeneratorRunner(
            self.run_button,
            self.progress,
            self.status,
            on_progress=on_progress,
            on_done=on_done,
            fraction=fraction,
        )
        bound_width(self, self.status, *wrap)
        self.run_button.changed.connect(lambda *_: self.runner.toggle(self.job))

    def job(self) -> Generator[Any, None, Any]:
        """The core generator one run of the widget drives (called in the worker thread).

        Returns
        -------
        generator
            Yields :class:`~napari_slideseg.progress.Progress` events; returns the result.

        Raises
        ------
        NotImplementedError
            Every subclass gives its own.
        """
        raise NotImplementedError
