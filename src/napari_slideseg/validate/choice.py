"""The validator for an option that takes one of a fixed set of values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import ErrorType, OptionError, show_value


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
        listing = ", ".join(show_value(o) for o in options)
        raise error(f"{name} must be one of {listing}, not {show_value(v)}")
    return v
