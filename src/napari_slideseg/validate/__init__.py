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

from .argtype import arg_type
from .base import OptionError
from .choice import choice
from .ints import int_at_least, int_in_range, integer, nonneg_int, positive_int
from .reals import fraction, in_range, nonneg, number, positive, positive_numbers

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
