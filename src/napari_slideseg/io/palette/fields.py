"""The checks a :class:`ClassMap` runs on its names, colours and background index."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from .common import MAX_CLASSES, RGB, MaskError


def as_int(value: Any, what: str) -> int:
    """``value`` as an int: integers and integral floats, never booleans.

    Parameters
    ----------
    value : Any
        The value (often from JSON).
    what : str
        What it is, for the message.

    Returns
    -------
    int
        The integer.

    Raises
    ------
    MaskError
        If ``value`` is a boolean or not integral.
    """
    if isinstance(value, bool | np.bool_):  # JSON true/false are not numbers here
        raise MaskError(f"{what} must be an integer, not {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise MaskError(f"{what} must be an integer, not {value!r}") from None


def _first_duplicate(items: Sequence[Any]) -> Any:
    seen: set[Any] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def _checked_colors(colors: Any) -> tuple[RGB, ...]:
    out: list[RGB] = []
    for col in colors:
        try:
            triple = tuple(as_int(v, "a colour component") for v in col)
        except TypeError:
            raise MaskError(f"colour {col!r} is not an RGB triple") from None
        if len(triple) != 3 or not all(0 <= v <= 255 for v in triple):
            raise MaskError(f"colour {tuple(col)} is not an RGB triple in 0-255")
        out.append(triple)
    return tuple(out)


def checked_fields(
    names: Any, colors: Any, background: Any, name: Any
) -> tuple[tuple[str, ...], tuple[RGB, ...], int, str]:
    """A class map's fields, normalised and checked.

    Parameters
    ----------
    names : sequence of str
        Class names, background included.
    colors : sequence of RGB triples
        One colour per class.
    background : int
        Index of the background class.
    name : str
        Name of the map.

    Returns
    -------
    names, colors, background, name
        Names as ``str``, colours as int triples, the index as ``int``.

    Raises
    ------
    MaskError
        If ``names`` is one string, the lengths differ, a colour is not an
        RGB triple in 0-255 or is used twice, a name is empty or used twice,
        there are more than :data:`MAX_CLASSES` classes, or ``background``
        is out of range.
    """
    if isinstance(names, str):
        raise MaskError("class names must be a list of names, not one string")
    names = tuple(str(n) for n in names)
    colors = _checked_colors(colors)
    background = as_int(background, "the background index")
    if not names:
        raise MaskError("a class map needs at least one class")
    if len(names) != len(colors):
        raise MaskError(f"class map has {len(names)} names but {len(colors)} colours")
    if len(names) > MAX_CLASSES:
        raise MaskError(f"class map has {len(names)} classes; at most {MAX_CLASSES} are supported")
    if len(set(colors)) != len(colors):
        dup = _first_duplicate(colors)
        raise MaskError(f"colour {dup} is used by more than one class")
    if any(not n.strip() for n in names):
        raise MaskError("class names must not be empty")
    if len(set(names)) != len(names):
        dup_n = _first_duplicate(names)
        raise MaskError(f"class name {dup_n!r} is used more than once; names must be unique")
    if not 0 <= background < len(names):
        raise MaskError(f"background index {background} is outside 0..{len(names) - 1}")
    return names, colors, background, str(name)
