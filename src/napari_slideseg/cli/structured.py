"""argparse types for list, dict and polygon options: JSON text or comma lists.

* a mapping: a JSON object, or ``key=value`` pairs joined with commas
  (``np_threshold=0.6,min_size=8``; each value read as JSON when it is, else text);
* a list of numbers or names: a JSON array, or values joined with commas;
* points (a polygon): a JSON array of ``[y, x]`` pairs, or ``y,x,y,x,...``;
* polygons: a JSON array of polygons, or polygons as above joined with ``;``.

A value that does not parse stops at argparse with the usual one-line error
naming the option (``argument --hover: expected ...``).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from typing import Any


def _json(text: str, opener: str) -> Any:
    """``text`` parsed as JSON when it starts with ``opener``, else ``None``."""
    if not text.strip().startswith(opener):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err})") from None


def _number(value: Any, kind: type) -> Any:
    """``value`` (text or JSON) as a finite ``kind`` (``int`` or ``float``), else ``None``."""
    if isinstance(value, bool):
        return None
    try:
        number = kind(value) if not isinstance(value, str) else kind(value.strip())
    except (TypeError, ValueError):
        return None
    if isinstance(value, float) and kind is int and value != number:
        return None
    return number if math.isfinite(number) else None


def mapping_type(flag: str) -> Callable[[str], dict[str, Any]]:
    """An argparse ``type`` for a mapping option (a JSON object or ``key=value,...``).

    Parameters
    ----------
    flag
        The option (argparse names it in errors).

    Returns
    -------
    Callable
        ``parse(text)`` giving the ``dict``.
    """
    example = "a JSON object or key=value pairs joined with commas (e.g. a=1,b=0.5)"

    def parse(text: str) -> dict[str, Any]:
        obj = _json(text, "{")
        if obj is not None:
            if not isinstance(obj, dict):
                raise argparse.ArgumentTypeError(f"expected {example}, not {text!r}")
            return obj
        out: dict[str, Any] = {}
        for item in filter(None, (t.strip() for t in text.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise argparse.ArgumentTypeError(f"expected {example}, not {text!r}")
            try:
                out[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                out[key.strip()] = value.strip()
        if not out:
            raise argparse.ArgumentTypeError(f"expected {example}, not {text!r}")
        return out

    parse.__name__ = "mapping"
    return parse


def named_mapping_type(
    flag: str,
    what: str,
    known: Callable[[], Sequence[str]],
    convert: Callable[[str, Any], Any] | None = None,
    label: str = "mapping",
) -> Callable[[str], dict[str, Any]]:
    """A :func:`mapping_type` whose keys must be among ``known()``.

    Parameters
    ----------
    flag
        The option (argparse names it in errors).
    what
        What the keys are, for the message (``HoVer loss terms``).
    known
        ``known()``: the allowed keys, in the order the message lists them
        (called when a value is parsed, so it may import lazily).
    convert
        ``convert(key, value)``: each value checked (a validator), or ``None``
        to keep the values as parsed.
    label
        The parser's ``__name__`` (argparse's name for the type).

    Returns
    -------
    Callable
        ``parse(text)`` giving the ``dict``; unknown keys, and values that
        ``convert`` refuses with an ``OptionError``, raise
        ``argparse.ArgumentTypeError``.
    """
    from ..validate import OptionError

    parse_mapping = mapping_type(flag)

    def parse(text: str) -> dict[str, Any]:
        params = parse_mapping(text)
        names = list(known())
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {what} {unknown}; known: {', '.join(names)}")
        if convert is None:
            return params
        try:
            return {k: convert(k, value) for k, value in params.items()}
        except OptionError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = label
    return parse


def sequence_type(kind: type, flag: str) -> Callable[[str], list[Any]]:
    """An argparse ``type`` for a list of ``kind`` values (a JSON array or comma list).

    Parameters
    ----------
    kind
        ``int``, ``float`` or ``str``.
    flag
        The option (argparse names it in errors).

    Returns
    -------
    Callable
        ``parse(text)`` giving the ``list``.
    """
    what = {int: "integers", float: "numbers", str: "names"}[kind]

    def parse(text: str) -> list[Any]:
        items = _json(text, "[")
        if items is None:
            items = [t.strip() for t in text.split(",")]
        elif not isinstance(items, list):
            items = None
        if kind is str:
            if items is None or not all(isinstance(v, str) and v for v in items):
                raise argparse.ArgumentTypeError(f"expected {what} joined with commas")
            return items
        got = [_number(v, kind) for v in items] if items else [None]
        if any(v is None for v in got):
            raise argparse.ArgumentTypeError(
                f"expected {what} joined with commas (or a JSON array), not {text!r}"
            )
        return got

    parse.__name__ = f"{kind.__name__} list"
    return parse


def _pairs(items: Any, text: str) -> tuple[tuple[float, float], ...]:
    """``[[y, x], ...]`` or a flat ``[y, x, y, x, ...]`` as ``((y, x), ...)``."""
    if isinstance(items, list) and items and not isinstance(items[0], list):
        flat = items
        items = None if len(flat) % 2 else [flat[i : i + 2] for i in range(0, len(flat), 2)]
    ok = isinstance(items, list) and all(isinstance(p, list) and len(p) == 2 for p in items)
    pts = [(_number(p[0], float), _number(p[1], float)) for p in items] if ok else []
    if not pts or any(v is None for p in pts for v in p):
        raise argparse.ArgumentTypeError(
            f"expected (y, x) points: y,x,y,x,... or a JSON array of [y, x] pairs, not {text!r}"
        )
    return tuple((float(y), float(x)) for y, x in pts)


def points_type(flag: str) -> Callable[[str], tuple[tuple[float, float], ...]]:
    """An argparse ``type`` for a polygon of ``(y, x)`` points.

    Parameters
    ----------
    flag
        The option (argparse names it in errors).

    Returns
    -------
    Callable
        ``parse(text)`` giving ``((y, x), ...)``.
    """

    def parse(text: str) -> tuple[tuple[float, float], ...]:
        items = _json(text, "[")
        return _pairs(items if items is not None else text.split(","), text)

    parse.__name__ = "points"
    return parse


def polygons_type(flag: str) -> Callable[[str], tuple[tuple[tuple[float, float], ...], ...]]:
    """An argparse ``type`` for polygons (``;`` between them, or a JSON array of polygons).

    Parameters
    ----------
    flag
        The option (argparse names it in errors).

    Returns
    -------
    Callable
        ``parse(text)`` giving ``(((y, x), ...), ...)``.
    """

    def parse(text: str) -> tuple[tuple[tuple[float, float], ...], ...]:
        items = _json(text, "[")
        if items is None:
            return tuple(_pairs(t.split(","), text) for t in text.split(";") if t.strip())
        if not isinstance(items, list) or not items:
            raise argparse.ArgumentTypeError(f"expected a JSON array of polygons, not {text!r}")
        return tuple(_pairs(p, text) for p in items)

    parse.__name__ = "polygons"
    return parse
