"""Number validators: finite floats, ranges, fractions and lists of them."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from .base import ErrorType, OptionError, bounded, refusal, show_value


def number(name: str, v: Any, *, error: ErrorType = OptionError, what: str = "a number") -> float:
    """``v`` as a finite ``float``.

    Parameters
    ----------
    name : str
        The option's name, as the user knows it (it starts the message).
    v : object
        The value.
    what : str
        What the message says it must be.
    error : type of Exception
        The exception class raised (default :class:`OptionError`).

    Returns
    -------
    float
        The value.

    Raises
    ------
    OptionError
        (``error`` when given) for a value it does not accept; the message
        names the option, what it accepts and the value given.
    """
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise refusal(name, what, v, error)
    return float(v)


def in_range(
    name: str,
    v: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    error: ErrorType = OptionError,
) -> float:
    """A finite number in ``[lo, hi]`` (``lo_open``/``hi_open`` exclude the ends).

    Parameters
    ----------
    name : str
        The option's name, as the user knows it (it starts the message).
    v : object
        The value.
    lo, hi : float, optional
        Bounds (None: unbounded).
    lo_open, hi_open : bool
        Exclude the bound itself.
    error : type of Exception
        The exception class raised (default :class:`OptionError`).

    Returns
    -------
    float
        The value.

    Raises
    ------
    OptionError
        (``error`` when given) for a value it does not accept; the message
        names the option, what it accepts and the value given.
    """
    if lo is not None and hi is not None:
        what = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        what = f"{'>' if lo_open else '>='} {lo:g}"
    elif hi is not None:
        what = f"{'<' if hi_open else '<='} {hi:g}"
    else:
        what = "a number"
    phrase = what if what == "a number" else f"a number {what}"

    def ok(f: float) -> bool:
        above = lo is None or (f > lo if lo_open else f >= lo)
        below = hi is None or (f < hi if hi_open else f <= hi)
        return above and below

    return float(bounded(name, v, number, phrase, ok, error))


def positive(name: str, v: Any, *, error: ErrorType = OptionError) -> float:
    """A finite number ``> 0``.

    Parameters
    ----------
    name : str
        The option's name, as the user knows it (it starts the message).
    v : object
        The value.
    error : type of Exception
        The exception class raised (default :class:`OptionError`).

    Returns
    -------
    float
        The value.

    Raises
    ------
    OptionError
        (``error`` when given) for a value it does not accept; the message
        names the option, what it accepts and the value given.
    """
    return in_range(name, v, 0, None, lo_open=True, error=error)


def nonneg(name: str, v: Any, *, error: ErrorType = OptionError) -> float:
    """A finite number ``>= 0``.

    Parameters
    ----------
    name : str
        The option's name, as the user knows it (it starts the message).
    v : object
        The value.
    error : type of Exception
        The exception class raised (default :class:`OptionError`).

    Returns
    -------
    float
        The value.

    Raises
    ------
    OptionError
        (``error`` when given) for a value it does not accept; the message
        names the option, what it accepts and the value given.
    """
    return in_range(name, v, 0, None, error=error)


def fraction(name: str, v: Any, *, hi_open: bool = False, error: ErrorType = OptionError) -> float:
    """A number in ``[0, 1]`` (``[0, 1)`` with ``hi_open``).

    Parameters
    ----------
    name : str
        The option's name, as the user knows it (it starts the message).
    v : object
        The value.
    hi_open : bool
        Exclude 1.
    error : type of Exception
        The exception class raised (default :class:`OptionError`).

    Returns
    -------
    float
        The value.

    Raises
    ------
    OptionError
        (``error`` when given) for a value it does not accept; the message
        names the option, what it accepts and the value given.
    """
    return in_range(name, v, 0, 1, hi_open=hi_open, error=error)


def positive_numbers(
    name: str, v: Any, *, length: int | None = None, error: ErrorType = OptionError
) -> list[float]:
    """A list of finite numbers ``> 0`` (of ``length`` items when given).

    Parameters
    ----------
    name : str
        The option's name, as the user knows it (it starts the message).
    v : object
        The value (a list or tuple).
    length : int, optional
        How many values it must have.
    error : type of Exception
        The exception class raised (default :class:`OptionError`).

    Returns
    -------
    list of float
        The values.

    Raises
    ------
    OptionError
        (``error`` when given) for a value it does not accept; the message
        names the option, what it accepts and the value given.
    """
    if isinstance(v, str | bytes) or not isinstance(v, Sequence):
        raise error(f"{name} must be a list of positive numbers, not {show_value(v)}")
    out = []
    for i, item in enumerate(v):
        out.append(positive(f"{name}[{i}]", item, error=error))
    if not out:
        raise error(f"{name} must be a list of positive numbers, not an empty list")
    if length is not None and len(out) != length:
        raise error(f"{name} must have {length} values (one per class), not {len(out)}")
    return out
