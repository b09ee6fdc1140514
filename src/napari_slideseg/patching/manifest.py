"""The patch manifest (``manifest.csv``): its classes, its columns, reading it back."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

import dask.array as da

from .config import PatchError

log = logging.getLogger(__name__)

#: The manifest's file name in a patch folder.
MANIFEST = "manifest.csv"


def manifest_classes(
    classmap: Any | None, mask: Any | None, instances: bool = False
) -> tuple[int | None, int, list[str]]:
    """The classes a patch run counts: how many, the background, their names.

    Parameters
    ----------
    classmap : ClassMap or None
        The mask's classes.
    mask : array or None
        The label map (numpy or dask); without a classmap its largest value
        sets the class count.
    instances : bool
        An instance map: two classes, background and nucleus.

    Returns
    -------
    tuple
        ``(n_classes, background, names)``; ``n_classes`` is ``None`` when
        there is neither a classmap nor a mask.
    """
    n_classes = classmap.n_classes if classmap is not None else None
    background = classmap.background if classmap is not None else 0
    if instances:
        n_classes, background = 2, 0
    if mask is not None and n_classes is None:
        top = mask.max()
        n_classes = int(top.compute() if isinstance(top, da.Array) else top) + 1
        log.debug("no classmap: %d classes from the mask's largest label", n_classes)
    names = (
        list(classmap.names)
        if classmap is not None and not instances
        else ["background", "nucleus"]
        if instances
        else [f"class_{i}" for i in range(n_classes or 0)]
    )
    return n_classes, background, names


def manifest_header(
    names: list[str], instances: bool = False, has_types: bool = False
) -> list[str]:
    """The manifest's columns.

    Parameters
    ----------
    names : list of str
        Class names (one ``frac_<name>`` column each).
    instances : bool
        Instance patches: adds ``n_instances``.
    has_types : bool
        Instance patches with a type map: adds ``types``.

    Returns
    -------
    list of str
        ``image, mask, slide, level, x, y, x0, y0, size, mpp, frac_*,
        has_foreground`` and the instance columns.
    """
    header = ["image", "mask", "slide", "level", "x", "y", "x0", "y0", "size", "mpp"]
    header += [f"frac_{n}" for n in names] + ["has_foreground"]
    if instances:
        header += ["n_instances"] + (["types"] if has_types else [])
    return header


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a ``manifest.csv`` (a folder holding one is accepted too).

    Parameters
    ----------
    path : str or os.PathLike
        The manifest, or the patch folder.

    Returns
    -------
    list of dict
        One ``{column: text}`` per patch.

    Raises
    ------
    PatchError
        There is no manifest (the run is incomplete or the path is wrong).
    """
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST
    if not p.exists():
        raise PatchError(f"{p}: no manifest (is the patch run complete?)")
    with open(p, newline="") as fh:
        return list(csv.DictReader(fh))
