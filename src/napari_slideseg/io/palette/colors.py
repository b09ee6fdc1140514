"""The colours of :meth:`~.classmap.ClassMap.default`: fixed ones first, then seeded random ones.

This module is core: it never imports Qt, napari or magicgui.
"""

from __future__ import annotations

import numpy as np

from .common import RGB

# Colours of ClassMap.default: the first 12 are fixed, more are drawn from a seeded RNG.
_DEFAULT_COLORS: tuple[RGB, ...] = (
    (0, 0, 0),
    (255, 255, 0),
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (255, 0, 255),
    (0, 255, 255),
    (255, 128, 0),
    (128, 0, 255),
    (0, 128, 0),
    (128, 128, 128),
    (255, 255, 255),
)


def default_colors(n: int) -> list[RGB]:
    """``n`` distinct colours: black, the fixed colours, then ones drawn from a seeded RNG.

    Parameters
    ----------
    n : int
        How many colours (already checked to be 1..65536).

    Returns
    -------
    list of tuple of int
        ``n`` different RGB triples; the same for every call with the same ``n``.
    """
    colors = list(_DEFAULT_COLORS[:n])
    seen = set(colors)
    rng = np.random.default_rng(12345)
    while len(colors) < n:
        r, g, b = (int(v) for v in rng.integers(0, 256, 3))
        c = (r, g, b)
        if c not in seen:
            seen.add(c)
            colors.append(c)
    return colors
