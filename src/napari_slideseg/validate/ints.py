"""Integer validators (``stride``, ``epochs``, ``workers``...)."""

from __future__ import annotations

import math
import numbers
from typing import Any

from .base import ErrorType, OptionError, bounded, refusal


def integer(name: str, v: Any, *, error: ErrorType = OptionError, what: str = "an integer") -> int:
    """``v`` as an ``int`` (bools, floats with a fraction and text are refused).

    Parameters
    ----------
    name : str
        The option's name, as the user knows it (it starts the message).
    v : object
        The value.
    error : type of Exception
        The exception class raised (default :class:`OptionError`).
    what : str
        What the message says it must be.

    Returns
    -------
    int
        The value.

    Raises
    ------
    OptionError
        (``error`` when given) for a value it does not accept; the message
        names the option, what it accepts and the value given.
    """
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        if isinstance(v, float) and math.isfinite(v) and v.is_integer():
            return int(v)
        raise refusal(name, what, v, error)
    return int(v)


def int_at_least(name: str, v: Any, lo: int, *, error: ErrorType = OptionError) -> int:
    """An integer ``>= lo``.

    Parameters
    ----------
    name : str
        The option's name, as the user knows it (it starts the message).
    v : object
        The value.
    lo : int
        Smallest allowed.
    error : type of Exception
        The exception class raised (default :class:`OptionError`).

    Returns
    -------
    int
        The value.

    Raises
    ------
    OptionError
        (``error`` when given) for a value it does not accept; the message
        names the option, what it accepts and the value given.
    """
    return bounded(name, v, integer, f"an integer >= {lo}", lambda n: n >= lo, error)


def positive_int(name: str, v: Any, *, error: ErrorType = OptionError) -> int:
    """An integer ``>= 1``.

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
    int
        The value.

    Raises
    ------
    OptionError
        (``error`` when given) for a value it does not accept; the message
        names the option, what it accepts and the value given.
    """
    return int_at_least(name, v, 1, error=error)


def nonneg_int(name: str, v: Any, *, error: ErrorType = OptionError) -> int:
    """An integer ``>= 0``.

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
    int
        The value.

    Raises
    ------
    OptionError
        (``error`` when given) for a value it does not accept; the message
        names the option, what it accepts and the value given.
    """
    return int_at_least(name, v, 0, error=error)


def int_in_range(name: str, v: Any, lo: int, hi: int, *, error: ErrorType = OptionError) -> int:
    """An integer in ``[lo, hi]``.

    Parameters
    ----------
    name : str
        The option's name, as the user knows it (it starts the message).
    v : object
        The value.
    lo, hi : int
        Smallest and largest allowed.
    error : type of Exception
        The exception class raised (default :class:`OptionError`).

    Returns
    -------
    int
        The value.

    Raises
    ------
    OptionError
        (``error`` when given) for a value it does not accept; the message
        names the option, what it accepts and the value given.
    """
    return bounded(name, v, integer, f"an integer in [{lo}, {hi}]", lambda n: lo <= n <= hi, error)
