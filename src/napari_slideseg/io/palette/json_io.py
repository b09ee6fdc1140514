"""The JSON form of a class map: ``{"version", "name", "names", "colors", "background"}``.

:meth:`ClassMap.to_dict`, :meth:`~ClassMap.from_dict`,
:meth:`~ClassMap.save_json` and :meth:`~ClassMap.load_json` are written
here. This module does not import :mod:`.classmap` (which calls it): the
class or the map is passed in.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..files import write_text_atomic
from .common import MaskError, where

#: Format version written; files of a newer version are refused.
FORMAT_VERSION = 1


def classmap_to_dict(cm: Any) -> dict[str, Any]:
    """The JSON-able form of a class map.

    Parameters
    ----------
    cm : ClassMap
        The map.

    Returns
    -------
    dict
        ``{"version", "name", "names", "colors", "background"}``.
    """
    return {
        "version": FORMAT_VERSION,
        "name": cm.name,
        "names": list(cm.names),
        "colors": [list(c) for c in cm.colors],
        "background": cm.background,
    }


def classmap_from_dict(cls: Any, d: Mapping[str, Any], source: str | os.PathLike | None) -> Any:
    """A class map rebuilt from :func:`classmap_to_dict`'s form.

    Parameters
    ----------
    cls : type[ClassMap]
        The class to build.
    d : Mapping
        The mapping (``names`` and ``colors`` are required).
    source : str or os.PathLike or None
        File the mapping came from, for error messages.

    Returns
    -------
    ClassMap
        The map.

    Raises
    ------
    MaskError
        Naming ``source`` and the problem (missing keys, bad values, newer
        format version).
    """
    at = where(source)
    if not isinstance(d, Mapping):
        raise MaskError(f"{at}a class map must be a JSON object, not {type(d).__name__}")
    missing = [k for k in ("names", "colors") if k not in d]
    if missing:
        raise MaskError(
            f"{at}not a class map: missing key(s) {', '.join(map(repr, missing))} "
            "(expected names, colors, background)"
        )
    version = d.get("version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise MaskError(
            f"{at}class map format version {version!r} is not supported "
            f"(this version reads {FORMAT_VERSION})"
        )
    try:
        return cls(
            names=tuple(d["names"]),
            colors=tuple(tuple(c) for c in d["colors"]),
            background=d.get("background", 0),
            name=str(d.get("name", "") or ""),
        )
    except MaskError as exc:
        raise MaskError(f"{at}{exc}") from exc
    except (TypeError, ValueError) as exc:
        raise MaskError(
            f"{at}not a class map ({type(exc).__name__}: {exc}); expected names, colors, background"
        ) from exc


def save_classmap_json(cm: Any, path: str | os.PathLike) -> Path:
    """Write a class map as indented JSON, atomically (:func:`~..files.atomic_path`).

    Parameters
    ----------
    cm : ClassMap
        The map.
    path : str or os.PathLike
        Destination file.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    IsADirectoryError
        If ``path`` is a folder (it is never replaced).
    OSError
        If the file cannot be written.
    """
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(p))
    write_text_atomic(p, json.dumps(classmap_to_dict(cm), indent=2) + "\n")
    return p


def load_classmap_json(cls: Any, path: str | os.PathLike) -> Any:
    """Read a class map written by :func:`save_classmap_json`.

    Parameters
    ----------
    cls : type[ClassMap]
        The class to build.
    path : str or os.PathLike
        The JSON file.

    Returns
    -------
    ClassMap
        The map.

    Raises
    ------
    MaskError
        Naming the file, if it is missing, unreadable, not JSON or not a class map.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MaskError(f"{p}: no such class map file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise MaskError(f"{p}: class map cannot be read ({exc})") from exc
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MaskError(f"{p}: class map is not valid JSON ({exc})") from exc
    return classmap_from_dict(cls, d, source=p)
