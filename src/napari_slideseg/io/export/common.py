"""What every label writer checks before writing, and the small helpers they share.

The checks raise :class:`~napari_slideseg.io.palette.MaskError` naming the
output path before anything is written: a 2D integer label image, not
empty, an output file name that is not a directory, class values that are
not negative and fit the class map, instance ids that fit the format.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..palette import ClassMap, MaskError, check_label_range
from ..placement import Placement


def resolve_placement(
    placement: Placement | None, mpp: tuple[float, float] | None, shape: tuple[int, ...]
) -> Placement | None:
    """The placement a writer records: ``placement``, else level-0 pixels of ``mpp`` µm, else None.

    Parameters
    ----------
    placement : Placement or None
        Where the labels sit on their slide, when known.
    mpp : (float, float) or None
        ``(y, x)`` µm per pixel of the labels, used when there is no ``placement``.
    shape : tuple of int
        The labels' shape, recorded in the placement.

    Returns
    -------
    Placement or None
        ``placement`` (or one of level 0 at ``mpp``) with ``shape`` set; None
        when neither is given.
    """
    if placement is None and mpp is None:
        return None
    if placement is None:
        placement = Placement.from_pixel_mpp(mpp)
    return replace(placement, shape=(int(shape[0]), int(shape[1])))


def as_label_image(labels: Any, what: str = "labels") -> Any:
    """``labels`` if it is a 2D integer label image.

    Parameters
    ----------
    labels : numpy.ndarray or dask.array.Array
        The array to check.
    what : str
        How the error names the array.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        ``labels`` itself.

    Raises
    ------
    MaskError
        ``labels`` is not 2D or not of an integer dtype.
    """
    if labels.ndim != 2:
        raise MaskError(f"{what} must be a 2D label image, got shape {tuple(labels.shape)}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise MaskError(f"{what} must have an integer dtype, got {labels.dtype}")
    return labels


def check_file_target(path: str | os.PathLike) -> Path:
    """Refuse an output file path that is an existing directory (before anything is written).

    The rename of the finished temporary file onto a directory would fail
    only at the end, with an ``Is a directory`` error naming the temporary
    file.

    Parameters
    ----------
    path : str or os.PathLike
        The output file.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MaskError
        ``path`` is a directory (the message names it).
    """
    path = Path(path)
    if path.is_dir():
        raise MaskError(f"{path}: is a directory; give a file name")
    return path


def check_not_empty(labels: Any, path: str | os.PathLike) -> None:
    """Refuse a label image without pixels (a 0 x 0 layer): no file would be usable.

    Parameters
    ----------
    labels : numpy.ndarray or dask.array.Array
        The label image.
    path : str or os.PathLike
        The output, named by the error.

    Raises
    ------
    MaskError
        ``labels`` has no pixels.
    """
    if int(np.prod(labels.shape)) == 0:
        shape = " x ".join(str(int(n)) for n in labels.shape)
        raise MaskError(f"{path}: the labels are empty ({shape} pixels); nothing to save")


def checked_output(path: str | os.PathLike, labels: Any) -> tuple[Path, Any]:
    """The checks every label writer makes before it writes anything.

    :func:`check_file_target` on ``path``, then :func:`as_label_image` and
    :func:`check_not_empty` on ``labels``, in that order.

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    labels : numpy.ndarray or dask.array.Array
        The label image.

    Returns
    -------
    tuple
        ``(Path(path), labels)``, the labels as :func:`as_label_image` gives them.

    Raises
    ------
    MaskError
        ``path`` is a directory, or the labels are not a non-empty 2D
        integer image.
    """
    out = check_file_target(path)
    labels = as_label_image(labels)
    check_not_empty(labels, out)
    return out, labels


def check_class_values(lo: int, path: str | os.PathLike) -> None:
    """Refuse class labels with negative values (class indices are 0 or more).

    Parameters
    ----------
    lo : int
        The smallest label value.
    path : str or os.PathLike
        The output, named by the error.

    Raises
    ------
    MaskError
        ``lo`` is negative.
    """
    if lo < 0:
        raise MaskError(
            f"{path}: the labels hold negative values (min {lo}); class labels are 0, 1, 2, ... "
            "(set the negative pixels to a class, e.g. 0 for background)"
        )


def check_class_range(band: np.ndarray, classmap: ClassMap, path: Path) -> None:
    """Refuse a band of class labels with values the class map does not have.

    Parameters
    ----------
    band : numpy.ndarray
        Class labels (a band of the image).
    classmap : ClassMap
        The classes the values must index.
    path : Path
        The output, named by the error.

    Raises
    ------
    MaskError
        A value is negative or not below ``classmap.n_classes`` (the
        message lists the class names).
    """
    if band.size and band.dtype != bool:
        check_class_values(int(band.min()), path)
    try:
        check_label_range(band, classmap)
    except MaskError as err:
        raise MaskError(f"{path}: {err} ({', '.join(classmap.names)})") from err


def id_refusal(path: Path, top: int, limit: int, fmt: str) -> MaskError:
    """The error for an instance id ``top`` above what format ``fmt`` holds (``limit``).

    Parameters
    ----------
    path : Path
        The output.
    top : int
        The largest id of the labels.
    limit : int
        The largest id the format holds.
    fmt : str
        The format, as the message names it (``"16-bit PNG"``).

    Returns
    -------
    MaskError
        The error, naming the formats that hold larger ids.
    """
    return MaskError(
        f"{path}: instance id {top} does not fit a {fmt} (ids 0..{limit}); save the instance "
        "layer as .tif (32-bit ids), .csv (one RLE row per instance), .zarr (OME-Zarr labels) "
        "or .geojson (one polygon per instance), or save the nucleus-type layer as a colour PNG"
    )


def check_ids(band: np.ndarray, path: Path, limit: int, fmt: str) -> None:
    """Refuse a band of instance ids that are negative or above ``limit``.

    Parameters
    ----------
    band : numpy.ndarray
        Instance ids (a band of the image).
    path : Path
        The output, named by the error.
    limit : int
        The largest id the format holds.
    fmt : str
        The format, as the message names it.

    Raises
    ------
    MaskError
        An id is negative, or above ``limit`` (:func:`id_refusal`).
    """
    if band.size == 0:
        return
    lo, hi = int(band.min()), int(band.max())
    if lo < 0:
        raise MaskError(f"{path}: instance ids must be non-negative, found {lo}")
    if hi > limit:
        raise id_refusal(path, hi, limit, fmt)


def label_max(labels: Any) -> int:
    """The largest label of a NumPy or dask label image.

    Parameters
    ----------
    labels : numpy.ndarray or dask.array.Array
        A non-empty label image.

    Returns
    -------
    int
        Its largest value.
    """
    m = labels.max()
    return int(m.compute() if isinstance(m, da.Array) else m)


def value_range(labels: Any) -> tuple[int, int]:
    """``(min, max)`` of a NumPy or dask label image in one pass.

    Parameters
    ----------
    labels : numpy.ndarray or dask.array.Array
        The label image.

    Returns
    -------
    tuple of (int, int)
        Its smallest and largest values; ``(0, 0)`` when it is empty.
    """
    if int(np.prod(labels.shape)) == 0:
        return 0, 0
    if isinstance(labels, da.Array):
        lo, hi = da.compute(labels.min(), labels.max())
    else:
        lo, hi = labels.min(), labels.max()
    return int(lo), int(hi)


def default_classmap(labels: Any, path: str | os.PathLike) -> ClassMap:
    """A default class map for every value of ``labels``.

    Parameters
    ----------
    labels : numpy.ndarray or dask.array.Array
        Class labels.
    path : str or os.PathLike
        The output, named by the error.

    Returns
    -------
    ClassMap
        :meth:`ClassMap.default` of ``max + 1`` classes.

    Raises
    ------
    MaskError
        ``labels`` holds negative values.
    """
    lo, hi = value_range(labels)
    check_class_values(lo, path)
    return ClassMap.default(hi + 1)


def jsonable(v: Any) -> Any:
    """A JSON value: NumPy scalars and arrays as Python ones, NaN and infinities as None.

    Parameters
    ----------
    v : object
        A scalar, NumPy scalar or array, or any JSON value.

    Returns
    -------
    object
        ``v`` as a JSON-serialisable value.
    """
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, np.ndarray):
        return [jsonable(x) for x in v.tolist()]
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v
