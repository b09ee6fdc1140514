"""Progress events shared by every long-running core operation.

Long operations are generators that yield :class:`Progress` events. A widget
drives them in a napari worker and maps events to a progress bar, the CLI
drives the same generator with tqdm, and scripted use drains them with
:func:`drain`. Closing the generator (or stopping iteration) cancels the work;
generators clean up partial output in ``finally`` blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One step of a long operation.

    Attributes
    ----------
    stage
        Short name of what is being done (``"decode"``, ``"level 2"``...).
    done, total
        Steps finished and steps in this stage (``total`` 0 when unknown).
    message
        Human-readable line for a status bar.
    info
        Extra JSON-able values (losses, counts) for richer displays.
    """

    stage: str
    done: int
    total: int
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Share of the stage done, in [0, 1] (0 when the total is unknown)."""
        return self.done / self.total if self.total else 0.0


ProgressCallback = Callable[[Progress], None]


def drain(gen: Generator[Progress, None, T], callback: ProgressCallback | None = None) -> T:
    """Run a progress generator to the end and return its return value.

    Parameters
    ----------
    gen : generator
        A generator yielding :class:`Progress` and returning a result.
    callback : callable, optional
        Called with each event, if given.

    Returns
    -------
    object
        What the generator returns.
    """
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if callback is not None:
            callback(event)


def tqdm_callback(
    desc: str = "", disable: bool = False
) -> tuple[ProgressCallback, Callable[[], None]]:
    """A callback that shows events on a terminal progress bar, and a closer.

    Parameters
    ----------
    desc : str
        Prefix of each bar's description (the stage name follows).
    disable : bool
        Show nothing (the callback still accepts events).

    Returns
    -------
    tuple
        ``(callback, close)``: one bar per stage; ``close()`` ends the last one.
    """
    from tqdm.auto import tqdm

    bars: dict[str, Any] = {}

    def callback(event: Progress) -> None:
        bar = bars.get(event.stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bars.clear()
            bar = bars[event.stage] = tqdm(
                total=event.total or None, desc=f"{desc}{event.stage}", disable=disable, leave=False
            )
        if event.total and bar.total != event.total:
            bar.total = event.total
        bar.n = event.done
        bar.refresh()

    def close() -> None:
        for bar in bars.values():
            bar.close()
        bars.clear()

    return callback, close
