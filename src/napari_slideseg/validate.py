"""Shared validators for option values (API config objects, the CLI, widgets).

Each validator takes the option's ``name`` (as the user knows it: ``stride``,
``val_fraction``) and the value, returns the value converted to its type, and
raises :class:`OptionError` (a :class:`~napari_slideseg.io.errors.SlideSegError`
and a ``ValueError``) whose message names the option, the allowed range and
the value given, e.g. ``stride must be an integer >= 1, not 0``.

Config objects pass their own error class (``error=PatchError``) so callers
that catch the module's error keep working. :func:`arg_type` turns a
validator into an ``argparse`` type, so the CLI gives the same message with
the option's flag (``--stride must be an integer >= 1, not 0``).
"""

from __future__ import annotations

import argparse
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from .errors import SlideSegError


class OptionError(SlideSegError, ValueError):
    """An option (parameter) value is outside what it accepts."""


ErrorType = type[Exception]


def _show(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)


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
        raise error(f"{name} must be {what}, not {_show(v)}")
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
    what = f"an integer >= {lo}"
    n = integer(name, v, error=error, what=what)
    if n < lo:
        raise error(f"{name} must be {what}, not {_show(v)}")
    return n


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
    what = f"an integer in [{lo}, {hi}]"
    n = integer(name, v, error=error, what=what)
    if not lo <= n <= hi:
        raise error(f"{name} must be {what}, not {_show(v)}")
    return n


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
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise error(f"{name} must be {what}, not {_show(v)}")
    f = float(v)
    if not math.isfinite(f):
        raise error(f"{name} must be {what}, not {_show(v)}")
    return f


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
    f = number(name, v, error=error, what=phrase)
    bad = (lo is not None and (f <= lo if lo_open else f < lo)) or (
        hi is not None and (f >= hi if hi_open else f > hi)
    )
    if bad:
        raise error(f"{name} must be {phrase}, not {_show(v)}")
    return f


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


def choice(name: str, v: Any, options: Sequence[Any], *, error: ErrorType = OptionError) -> Any:
    """One of ``options``.

    Parameters
    ----------
    name : str
        The option's name, as the user knows it (it starts the message).
    v : object
        The value.
    options : sequence
        The allowed values.
    error : type of Exception
        The exception class raised (default :class:`OptionError`).

    Returns
    -------
    object
        ``v``.

    Raises
    ------
    OptionError
        (``error`` when given) for a value it does not accept; the message
        names the option, what it accepts and the value given.
    """
    if v not in options:
        listing = ", ".join(_show(o) for o in options)
        raise error(f"{name} must be one of {listing}, not {_show(v)}")
    return v


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
        raise error(f"{name} must be a list of positive numbers, not {_show(v)}")
    out = []
    for i, item in enumerate(v):
        out.append(positive(f"{name}[{i}]", item, error=error))
    if not out:
        raise error(f"{name} must be a list of positive numbers, not an empty list")
    if length is not None and len(out) != length:
        raise error(f"{name} must have {length} values (one per class), not {len(out)}")
    return out


def arg_type(validator: Callable[..., Any], flag: str, *args: Any, **kwargs: Any) -> Callable:
    """An ``argparse`` ``type=`` that parses text and checks it with ``validator``.

    Integers are parsed from text by validators whose name says ``int``;
    everything else as a ``float`` (text that is neither reaches the
    validator as text, which refuses it). The message names ``flag``.

    Parameters
    ----------
    validator : callable
        One of this module's validators.
    flag : str
        The option's flag (``--stride``), passed as the name.
    *args, **kwargs
        The validator's other arguments (``lo``, ``hi``...).

    Returns
    -------
    callable
        ``parse(text)``: the checked value, or an ``argparse.ArgumentTypeError``.
    """
    want_int = "int" in validator.__name__

    def parse(text: str) -> Any:
        value: Any
        try:
            value = int(text) if want_int else float(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                value = text
        try:
            return validator(flag, value, *args, **kwargs)
        except OptionError as err:
            # argparse prefixes "argument --flag: "; don't say the flag twice
            msg = str(err).removeprefix(f"{flag} ")
            raise argparse.ArgumentTypeError(msg) from None

    parse.__name__ = validator.__name__
    return parse


__all__ = [
    "OptionError",
    "arg_type",
    "choice",
    "fraction",
    "in_range",
    "int_at_least",
    "int_in_range",
    "integer",
    "nonneg",
    "nonneg_int",
    "number",
    "positive",
    "positive_int",
    "positive_numbers",
]
