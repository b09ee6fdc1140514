"""The corrections layout's names, its error, and the chunk grid of a corrected array."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import SlideSegError

#: The prediction arrays that can be corrected and their pyramid groups.
PYRAMIDS = {"labels": "pyramid", "instances": "pyramid_instances"}
#: The group inside a prediction folder that holds its corrections.
GROUP = "corrections"
#: The attribute of :data:`GROUP` with the format, identity, version and history.
ATTRS = "slideseg_corrections"
#: The layout's version (see :mod:`napari_slideseg.corrections.store`).
FORMAT = 1


class CorrectionsError(SlideSegError, ValueError):
    """Corrections cannot be opened or recorded (another prediction, wrong array or shape)."""


def chunk_windows(
    shape: Sequence[int], chunks: Sequence[int], y0: int, x0: int, y1: int, x1: int
) -> list[tuple[int, int, tuple[int, int, int, int]]]:
    """The chunks of a 2-D grid a window overlaps, with each chunk's own window.

    Parameters
    ----------
    shape : sequence of int
        ``(H, W)`` of the array.
    chunks : sequence of int
        ``(ch, cw)`` chunk shape.
    y0, x0, y1, x1 : int
        The window (clipped to the array).

    Returns
    -------
    list of tuple
        ``(cy, cx, (wy0, wx0, wy1, wx1))``: chunk position and its window.
    """
    H, W = int(shape[0]), int(shape[1])
    ch, cw = int(chunks[0]), int(chunks[1])
    y0, x0, y1, x1 = max(0, y0), max(0, x0), min(H, y1), min(W, x1)
    out: list[tuple[int, int, tuple[int, int, int, int]]] = []
    if y1 <= y0 or x1 <= x0:
        return out
    for cy in range(y0 // ch, -(-y1 // ch)):
        for cx in range(x0 // cw, -(-x1 // cw)):
            win = (cy * ch, cx * cw, min(H, (cy + 1) * ch), min(W, (cx + 1) * cw))
            out.append((cy, cx, win))
    return out
