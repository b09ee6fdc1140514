"""Block writes shared by the semantic and HoVer paths, and the fault hook tests kill runs with.

Every block write step calls :func:`fault` with its name just before it
happens; tests set :data:`FAULT` to raise there, which simulates a kill at
that point, and check that resuming gives the uninterrupted result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: Fault injection for tests: when set, called with the name of each block write step
#: (``labels``, ``pyramid``, ``instances``, ``instance_pyramid``, ``maps``, ``table``,
#: ``done``) just before it happens; raising there simulates a kill at that point.
FAULT: Callable[[str], None] | None = None


def fault(step: str) -> None:
    """Call the test hook :data:`FAULT` (if set) before write step ``step``."""
    if FAULT is not None:
        FAULT(step)


def write_pyramid(
    root: Any, group: str, y0: int, x0: int, window: np.ndarray, factors: Sequence[int]
) -> None:
    """Write the stride-sampled levels of a level-0 ``window`` at ``(y0, x0)`` into ``group/<f>``.

    Level ``f`` holds level-0 pixels ``(f * i, f * j)``; a window that does
    not start on a multiple of ``f`` contributes from its first such pixel.
    """
    for f in factors:
        oy, ox = (-y0) % f, (-x0) % f
        sub = window[oy::f, ox::f]
        if sub.size:
            dy, dx = (y0 + oy) // f, (x0 + ox) // f
            root[f"{group}/{f}"][dy : dy + sub.shape[0], dx : dx + sub.shape[1]] = sub
