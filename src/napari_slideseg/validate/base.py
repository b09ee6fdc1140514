"""The error and message helpers that every validator shares."""

from __future__ import annotations

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
