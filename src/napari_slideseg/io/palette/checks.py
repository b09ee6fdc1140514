"""Shape and label-range checks of masks against a class map and a slide."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .common import MaskError

if TYPE_CHECKING:
    from .classmap import ClassMap


def check_label_range(arr: np.ndarray, cm: ClassMap) -> None:
    """Raise :class:`MaskError` listing label values (up to 10) that have no class.

    Parameters
    ----------
    arr : numpy.ndarray
        Integer or boolean labels.
    cm : ClassMap
        The class map.

    Raises
    ------
    MaskError
        If a value is negative or not below ``cm.n_classes``.
    """
    arr = np.asarray(arr)
    if not arr.size:
        return
    if arr.dtype == bool:
        if cm.n_classes < 2 and arr.any():
            raise MaskError(
                f"label values [1] have no class in the class map ({cm.n_classes} classes)"
            )
        return
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi >= cm.n_classes:
        bad = np.unique(arr[(arr < 0) | (arr >= cm.n_classes)])
        shown = bad[:10].tolist()
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise MaskError(
            f"label values {shown}{more} have no class in the class map ({cm.n_classes} classes)"
        )


def check_same_shape(
    mask_shape: Sequence[int],
    slide_shape: Sequence[int],
    *,
    mask_name: str = "mask",
    slide_name: str = "slide",
) -> None:
    """Raise :class:`MaskError` if the mask's (H, W) differs from the slide's.

    Parameters
    ----------
    mask_shape, slide_shape
        NumPy shapes; only the first two axes (height, width) are compared.
    mask_name, slide_name
        Names (files) for the message, which gives both sizes as
        width x height and as NumPy shapes.

    Raises
    ------
    MaskError
        If the sizes differ.
    """
    mh, mw = int(mask_shape[0]), int(mask_shape[1])
    sh, sw = int(slide_shape[0]), int(slide_shape[1])
    if (mh, mw) != (sh, sw):
        raise MaskError(
            f"{mask_name} is {mw} x {mh} (width x height; shape {tuple(mask_shape)}) "
            f"but {slide_name} is {sw} x {sh} (shape {tuple(slide_shape)}); "
            "a mask must have the size of the slide's full-resolution level"
        )
