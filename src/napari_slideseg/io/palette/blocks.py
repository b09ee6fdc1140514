"""Block functions: NumPy block in, labels or colours out (used directly and via map_blocks).

Colours that are not in the class map are an error that lists each colour
with its pixel count (the top 10), naming the chunk of a dask mask.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from .checks import check_label_range
from .common import MaskError, where
from .keys import color_lut, grey_lut, pack, unpack
from .scan import opaque_rgb, unique_counts

if TYPE_CHECKING:
    from .classmap import ClassMap


def _chunk_location(block_info: dict | None) -> str:
    try:
        (y0, y1), (x0, x1) = block_info[0]["array-location"][:2]  # type: ignore[index]
    except (TypeError, KeyError, IndexError, ValueError):
        return ""
    return f" in rows {y0}-{y1 - 1}, columns {x0}-{x1 - 1} (check_colors lists the whole mask)"


def unknown_message(
    keys: np.ndarray,
    counts: np.ndarray,
    cm: ClassMap,
    source: str | os.PathLike | None,
    *,
    grey: bool = False,
    tolerance: float | None = None,
    location: str = "",
) -> str:
    """'N colour(s) are not in the class map ...' with the top 10 colours by count.

    Parameters
    ----------
    keys : numpy.ndarray
        The unknown colours as :func:`~.keys.pack` keys, or grey values.
    counts : numpy.ndarray
        Their pixel counts.
    cm : ClassMap
        The class map they are not in.
    source : str or os.PathLike or None
        File name for the message.
    grey : bool
        ``keys`` are grey values, not packed colours.
    tolerance : float or None
        The tolerance used, if any.
    location : str
        Where in the mask (the chunk), appended after the class map's name.

    Returns
    -------
    str
        The message.
    """
    keys = np.asarray(keys)
    counts = np.asarray(counts, np.int64)
    order = np.lexsort((keys, -counts))
    if grey:
        items = [f"grey {int(keys[i])}: {int(counts[i])} px" for i in order[:10]]
        what = "grey value(s)"
    else:
        cols = unpack(keys)
        items = [f"{tuple(int(v) for v in cols[i])}: {int(counts[i])} px" for i in order[:10]]
        what = "colour(s)"
    more = f", and {len(keys) - 10} more" if len(keys) > 10 else ""
    tol = f" (none within tolerance {tolerance:g} of a class colour)" if tolerance else ""
    label = f" {cm.name!r}" if cm.name else ""
    hint = (
        "Use the right preset or class map"
        + ("" if tolerance else ", or pass a tolerance for JPEG-compressed masks")
        + (" (a grey mask of class indices is read as labels directly)" if grey else "")
    )
    return (
        f"{where(source)}{len(keys)} {what} are not in the class map{label}{tol}{location}, "
        f"{int(counts.sum())} pixel(s) in all: {', '.join(items)}{more}. {hint}"
    )


def _refuse_unknown(
    values: np.ndarray,
    bad: np.ndarray,
    cm: ClassMap,
    source: str | os.PathLike | None,
    tolerance: float | None,
    block_info: dict | None,
    *,
    grey: bool = False,
) -> None:
    """Raise :func:`unknown_message`'s error for ``values[bad]``, if any is bad."""
    if bad.any():
        u, c = unique_counts(values[bad])
        raise MaskError(
            unknown_message(
                u,
                c,
                cm,
                source,
                grey=grey,
                tolerance=tolerance,
                location=_chunk_location(block_info),
            )
        )


def is_grey_map(cm: ClassMap) -> bool:
    """Whether every colour of ``cm`` is a grey ``(v, v, v)``.

    Parameters
    ----------
    cm : ClassMap
        The class map.

    Returns
    -------
    bool
        True for maps like ``binary``, whose grey masks map value ``v`` to
        the class of colour ``(v, v, v)``.
    """
    return all(r == g == b for r, g, b in cm.colors)


def rgb_block(
    block: np.ndarray,
    cm: ClassMap,
    tolerance: float | None,
    source: str | os.PathLike | None,
    block_info: dict | None = None,
) -> np.ndarray:
    """Class labels of an RGB (or opaque RGBA) block.

    Parameters
    ----------
    block : numpy.ndarray
        ``(..., 3)`` or opaque ``(..., 4)`` uint8 colours.
    cm : ClassMap
        The class map.
    tolerance : float or None
        Nearest-colour tolerance (:func:`~.keys.check_tolerance`).
    source : str or os.PathLike or None
        File name for error messages.
    block_info : dict, optional
        What ``map_blocks`` passes: locates the chunk in the message.

    Returns
    -------
    numpy.ndarray
        Labels in ``cm.label_dtype``.

    Raises
    ------
    MaskError
        Listing the colours that are not in ``cm`` (within the tolerance).
    """
    keys = pack(opaque_rgb(block, source))
    lut = color_lut(cm.colors, tolerance)
    out = lut[keys]
    _refuse_unknown(keys, out == np.iinfo(lut.dtype).max, cm, source, tolerance, block_info)
    return out.astype(cm.label_dtype, copy=False)


def grey_values(block: np.ndarray, source: str | os.PathLike | None) -> np.ndarray:
    """``block`` itself, once it is known to hold integer grey values.

    Parameters
    ----------
    block : numpy.ndarray
        A grey mask block.
    source : str or os.PathLike or None
        File name for error messages.

    Returns
    -------
    numpy.ndarray
        ``block``.

    Raises
    ------
    MaskError
        If it holds booleans or non-integers.
    """
    if block.dtype == bool or not np.issubdtype(block.dtype, np.integer):
        raise MaskError(f"{where(source)}a grey mask holds integers, not {block.dtype}")
    return block


def grey_block(
    block: np.ndarray,
    cm: ClassMap,
    tolerance: float | None,
    source: str | os.PathLike | None,
    block_info: dict | None = None,
) -> np.ndarray:
    """Class labels of a grey block: value ``v`` is the class of colour ``(v, v, v)``.

    Parameters
    ----------
    block : numpy.ndarray
        Integer grey values.
    cm : ClassMap
        The class map.
    tolerance : float or None
        Nearest-colour tolerance (:func:`~.keys.check_tolerance`).
    source : str or os.PathLike or None
        File name for error messages.
    block_info : dict, optional
        What ``map_blocks`` passes: locates the chunk in the message.

    Returns
    -------
    numpy.ndarray
        Labels in ``cm.label_dtype``.

    Raises
    ------
    MaskError
        Listing the grey values that have no class (within the tolerance).
    """
    block = grey_values(np.asarray(block), source)
    lut = grey_lut(cm.colors, tolerance)
    miss = np.iinfo(lut.dtype).max
    if block.dtype == np.uint8:
        out = lut[block]
    else:
        inside = (block >= 0) & (block <= 255)
        out = np.full(block.shape, miss, lut.dtype)
        out[inside] = lut[block[inside].astype(np.intp)]
    _refuse_unknown(block, out == miss, cm, source, tolerance, block_info, grey=True)
    return out.astype(cm.label_dtype, copy=False)


def index_block(block: np.ndarray, cm: ClassMap, source: str | os.PathLike | None) -> np.ndarray:
    """A block of class indices, range-checked, in ``cm.label_dtype``.

    Parameters
    ----------
    block : numpy.ndarray
        Integer or boolean class indices.
    cm : ClassMap
        The class map.
    source : str or os.PathLike or None
        File name for error messages.

    Returns
    -------
    numpy.ndarray
        The labels.

    Raises
    ------
    MaskError
        If the values are not integers or have no class (listed).
    """
    block = np.asarray(block)
    if block.dtype != bool and not np.issubdtype(block.dtype, np.integer):
        raise MaskError(f"{where(source)}labels must be integers, not {block.dtype}")
    try:
        check_label_range(block, cm)
    except MaskError as err:
        raise MaskError(f"{where(source)}{err}") from None
    return block.astype(cm.label_dtype, copy=False)


def labels_block_to_rgb(block: np.ndarray, cm: ClassMap) -> np.ndarray:
    """``(..., 3)`` uint8 colours of a block of class-index labels.

    Parameters
    ----------
    block : numpy.ndarray
        Integer or boolean labels.
    cm : ClassMap
        The colours of the classes.

    Returns
    -------
    numpy.ndarray
        ``cm.lut()[block]``.

    Raises
    ------
    MaskError
        If the labels are not integers or have no class (listed).
    """
    block = np.asarray(block)
    if block.dtype == bool:
        block = block.view(np.uint8)
    elif not np.issubdtype(block.dtype, np.integer):
        raise MaskError(f"labels must be integers, not {block.dtype}")
    check_label_range(block, cm)
    return cm.lut()[block]
