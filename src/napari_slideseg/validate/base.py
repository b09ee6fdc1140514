"""The error and message helpers that every validator shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import SlideSegError


class OptionError(SlideSegError, ValueError):
    """An option (parameter) value is outside what it accepts."""


ErrorType = type[Exception]


def show_value(v: Any) -> str:
    """How a value appears in a message (text quoted, anything else as ``str``).

    Parameters
    ----------
    v : object
        The value.

    Returns
    -------
    str
        ``repr(v)`` for a ``str``, else ``str(v)``.
    """
    return repr(v) if isinstance(v, str) else str(v)


def refusal(name: str, what: str, v: Any, error: ErrorType = OptionError) -> Exception:
    """The error every validator raises: ``{name} must be {what}, not {v}``.

    Parameters
    ----------
    name : str
        The option's name, as the user knows it (it starts the message).
    what : str
        What the option must be (``an integer >= 1``).
    v : object
        The value given.
    error : type of Exception
        The exception class made (default :class:`OptionError`).

    Returns
    -------
    Exception
        An ``error`` with that message, for the caller to raise.
    """
    return error(f"{name} must be {what}, not {show_value(v)}")


def bounded(
    name: str,
    v: Any,
    convert: Callable[..., Any],
    what: str,
    ok: Callable[[Any], bool],
    error: ErrorType = OptionError,
) -> Any:
    """``v`` converted by ``convert`` and checked by ``ok`` (the bound checks share this).

    Parameters
    ----------
    name, v : str, object
        The option's name and the value given, as the validator was called with them.
    convert : callable
        ``convert(name, v, error=..., what=...)``: the value as its type
        (:func:`~napari_slideseg.validate.integer`, :func:`~napari_slideseg.validate.number`).
    what : str
        What the message says it must be (both for a wrong type and a value out of bounds).
    ok : callable
        ``ok(value)``: whether the converted value is within the bounds.
    error : type of Exception
        The exception class raised (default :class:`OptionError`).

    Returns
    -------
    object
        The converted value.

    Raises
    ------
    OptionError
        (``error`` when given) when ``convert`` refuses the value or ``ok`` is false.
    """
    value = convert(name, v, error=error, what=what)
    if not ok(value):
        raise refusal(name, what, v, error)
    return value
