"""The patch manifest (``manifest.csv``): its classes, its columns, reading it back."""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from .config import PatchError

if TYPE_CHECKING:
    from .iterate import Patch

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


@dataclass(frozen=True)
class ManifestLayout:
    """How a run names its patches and fills its manifest rows.

    Attributes
    ----------
    stem : str
        The slide's file name up to its first dot.
    level : int
        The level cut.
    ztag : str
        ``""``, or ``z<zoom>`` when patches are resampled.
    factor : tuple of float
        Level-0 pixels per patch pixel, ``(fy, fx)``.
    size : int
        The patch edge.
    mpp : float or None
        The patches' µm/px.
    n_classes : int or None
        Classes counted in the ``frac_*`` columns.
    background : int
        The background label.
    names : list of str
        Class names.
    instances, has_types : bool
        Instance patches, with a type map.
    ignore : int or None
        The mask value of unannotated pixels (``unannotated="ignore"``):
        neither a class in ``frac_*`` nor foreground.
    """

    stem: str
    level: int
    ztag: str
    factor: tuple[float, float]
    size: int
    mpp: float | None
    n_classes: int | None
    background: int
    names: list[str]
    instances: bool
    has_types: bool
    ignore: int | None = None

    def patch_name(self, item: Patch) -> str:
        """The PNG name of a patch: ``<stem>_L<level>[z<zoom>]_y<y>_x<x>.png``.

        Parameters
        ----------
        item : Patch
            The patch.

        Returns
        -------
        str
            The file name.
        """
        return f"{self.stem}_L{self.level}{self.ztag}_y{item.y}_x{item.x}.png"

    def header(self) -> list[str]:
        """The manifest's columns (:func:`manifest_header`).

        Returns
        -------
        list of str
            Column names.
        """
        return manifest_header(self.names, self.instances, self.has_types)

    def fractions(self, mask: np.ndarray) -> tuple[list[float], int]:
        """Per-class pixel fractions of a mask patch, and whether it holds foreground.

        Parameters
        ----------
        mask : numpy.ndarray
            The mask patch (instance ids count as class 1).

        Returns
        -------
        tuple
            ``(fracs, has_fg)``: fractions rounded to 6 decimals, and 0 or 1.
        """
        n = self.n_classes
        counts = np.bincount(
            (mask > 0 if self.instances else mask).ravel().astype(np.int64), minlength=n or 1
        )
        fracs = (counts[: n or len(counts)] / mask.size).round(6).tolist()
        fg = mask != self.background
        if self.ignore is not None:
            fg &= mask != self.ignore
        return fracs, int(bool(np.any(fg)))

    def row(self, item: Patch, refs: tuple[str, str], labels: Any, extra: list[Any]) -> list:
        """A manifest row, in the order of :meth:`header`.

        Parameters
        ----------
        item : Patch
            The patch (its corner).
        refs : tuple of str
            ``(image, mask)`` references; ``mask`` is ``""`` without one.
        labels : tuple or None
            :meth:`fractions` of the mask patch; ``None`` without a mask.
        extra : list
            Instance columns (``n_instances``, ``types``).

        Returns
        -------
        list
            The row's values.
        """
        fy, fx = self.factor
        where = [item.x, item.y, round(item.x * fx), round(item.y * fy)]
        mpp = "" if self.mpp is None else self.mpp
        if labels is None:
            fracs, has_fg = [""] * len(self.names), ""
        else:
            fracs, has_fg = labels
            fracs = fracs + [0.0] * (len(self.names) - len(fracs))
        return [*refs, self.stem, self.level, *where, self.size, mpp, *fracs, has_fg, *extra]


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
