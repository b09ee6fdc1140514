"""The RLE error type and the argument checks every RLE function starts with."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ...options import RLEOrder, values
from ..errors import SlideSegError

#: The two pixel orders: column-major (``"col"``) and row-major (``"row"``).
ORDERS = tuple(values(RLEOrder))


class RLEError(SlideSegError, ValueError):
    """An RLE string, COCO RLE or RLE CSV file is malformed or ambiguous.

    Parameters
    ----------
    problem
        What is wrong, as a sentence fragment (no file name or row in it).
    source
        The file the problem is about, if any.
    row
        1-based data row of a CSV file (the header is not counted), if any.
    row_id
        The row's image or object id, if known.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str | os.PathLike | None = None,
        row: int | None = None,
        row_id: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = os.fspath(source) if source is not None else None
        self.row = row
        self.row_id = row_id
        parts = []
        if self.source:
            parts.append(self.source)
        where = f"row {row}" if row is not None else ""
        if row_id not in (None, ""):
            where = f"{where} (id {row_id!r})" if where else f"id {row_id!r}"
        if where:
            parts.append(where)
        parts.append(problem)
        super().__init__(": ".join(parts))

    def located(
        self,
        source: str | os.PathLike | None = None,
        row: int | None = None,
        row_id: str | None = None,
    ) -> RLEError:
        """A copy of this error that also names ``source``, ``row`` and ``row_id``.

        Parameters
        ----------
        source
            The file; keeps this error's file when None.
        row
            1-based data row; keeps this error's row when None.
        row_id
            The row's id; keeps this error's id when None.

        Returns
        -------
        RLEError
            A new error with the same ``problem``.
        """
        return RLEError(
            self.problem,
            source=source if source is not None else self.source,
            row=row if row is not None else self.row,
            row_id=row_id if row_id is not None else self.row_id,
        )


def check_order(order: Any) -> str:
    """Check a pixel order argument.

    Parameters
    ----------
    order
        ``"col"`` or ``"row"``.

    Returns
    -------
    str
        ``order``.

    Raises
    ------
    RLEError
        ``order`` is None (the message says how to choose one) or another value.
    """
    if order is None:
        raise RLEError(
            "the pixel order is not known: pass order='col' (column-major: HuBMAP, Airbus) "
            "or order='row' (row-major: Carvana); guess_order() compares both with a "
            "reference mask"
        )
    if order not in ORDERS:
        raise RLEError(f"order must be 'col' or 'row', got {order!r}")
    return order


def check_base(base: Any) -> int:
    """Check a first-pixel index argument.

    Parameters
    ----------
    base
        0 or 1 (not a bool).

    Returns
    -------
    int
        ``base`` as an int.

    Raises
    ------
    RLEError
        Any other value.
    """
    if isinstance(base, bool) or base not in (0, 1):
        raise RLEError(f"base must be 0 or 1, got {base!r}")
    return int(base)


def check_shape(shape: Any) -> tuple[int, int]:
    """Check a ``(height, width)`` argument.

    Parameters
    ----------
    shape
        Two non-negative integers (integral floats are accepted).

    Returns
    -------
    tuple of int
        ``(height, width)``.

    Raises
    ------
    RLEError
        Not two values, a non-integer or a negative value.
    """
    try:
        h, w = (int(v) for v in shape)
        ok = all(int(v) == v for v in shape)
    except (TypeError, ValueError):
        ok = False
    if not ok or h < 0 or w < 0:
        raise RLEError(f"shape must be (height, width) with non-negative integers, got {shape!r}")
    return h, w


def check_value(value: Any, dtype: Any) -> Any:
    """Check that a paint value is stored exactly in ``dtype``.

    Parameters
    ----------
    value
        The value.
    dtype
        The array dtype it will be written into.

    Returns
    -------
    numpy.generic
        ``value`` as a scalar of ``dtype``.

    Raises
    ------
    RLEError
        ``value`` is not a scalar or changes when cast to ``dtype``.
    """
    dtype = np.dtype(dtype)
    try:
        v = np.asarray(value).astype(dtype)
        ok = v.ndim == 0 and v == value
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise RLEError(f"value {value!r} cannot be stored in a {dtype} array")
    return v[()]


def check_label_dtype(dtype: Any, what: str = "labels") -> None:
    """Refuse a dtype that is not integer or bool.

    Parameters
    ----------
    dtype
        The dtype to check.
    what
        What has the dtype, for the message.

    Raises
    ------
    RLEError
        A float, complex, string or object dtype.
    """
    if np.dtype(dtype).kind not in "biu":
        raise RLEError(f"{what} must be an integer or bool array, got dtype {np.dtype(dtype)}")


def is_dask(x: Any) -> bool:
    """Whether ``x`` is a dask collection (without importing dask).

    Parameters
    ----------
    x
        Any object.

    Returns
    -------
    bool
        True for dask arrays.
    """
    return type(x).__module__.split(".")[0] == "dask" and hasattr(x, "compute")


def is_empty_rle(rle: Any) -> bool:
    """Whether an RLE field stands for an empty mask.

    Parameters
    ----------
    rle
        An RLE string or bytes, None or a float (a data frame's ``NaN``).

    Returns
    -------
    bool
        True for None, NaN, and blank or ``"nan"`` text.
    """
    if rle is None:
        return True
    if isinstance(rle, float):
        return bool(np.isnan(rle))
    if isinstance(rle, bytes):
        rle = rle.decode("ascii", errors="replace")
    if isinstance(rle, str):
        s = rle.strip()
        return s == "" or s.lower() == "nan"
    return False


def as_2d(a: Any, what: str) -> np.ndarray:
    """``a`` as a 2D NumPy array.

    Parameters
    ----------
    a
        Array-like.
    what
        Its name, for the message.

    Returns
    -------
    numpy.ndarray
        ``np.asarray(a)``.

    Raises
    ------
    RLEError
        ``a`` is not 2D.
    """
    a = np.asarray(a)
    if a.ndim != 2:
        raise RLEError(f"{what} must be a 2D array, got shape {a.shape}")
    return a
