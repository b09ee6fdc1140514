"""Validators as ``argparse`` types, so the CLI gives the same messages."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from .base import OptionError


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
