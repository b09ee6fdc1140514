"""What every part of the class-map package shares: limits, the error, small helpers.

This module is core: it never imports Qt, napari or magicgui.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import SlideSegError

RGB = tuple[int, int, int]

#: Most classes a map can hold: label values 0..65535 fit ``uint16``.
MAX_CLASSES = 65536

#: Colours covering less than this share of a mask's pixels are never made classes
#: by :meth:`ClassMap.infer` without being asked (``min_share=0``): they are refused,
#: listed with their pixel counts (a stray pixel would change the class count).
MIN_CLASS_SHARE = 0.001


class MaskError(SlideSegError, ValueError):
    """A mask or class map is unusable.

    The message names the file when it is known, and says what is wrong.
    """


def where(source: str | os.PathLike | None) -> str:
    """The ``"<file>: "`` an error message starts with, ``""`` when the file is unknown.

    Parameters
    ----------
    source : str or os.PathLike or None
        The file a mask or class map came from.

    Returns
    -------
    str
        ``"<source>: "``, or ``""`` for ``None`` or an empty name.
    """
    return f"{os.fspath(source)}: " if source else ""


def is_dask(a: Any) -> bool:
    """Whether ``a`` is a dask collection (checked without importing dask).

    Parameters
    ----------
    a : Any
        Any object.

    Returns
    -------
    bool
        True when the type of ``a`` comes from the ``dask`` package.
    """
    return type(a).__module__.split(".", 1)[0] == "dask"
