"""Checking what a patch run is given: the slide, the mask (instances, annotations), the choices."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from .config import OVERWRITE, PatchError
from .writers import FORMATS


def instance_mask(mask: Any, types: Any, instances: bool, fmt: str) -> Any:
    """The mask to cut: with ``instances`` and a type map, both stacked on a last axis.

    Parameters
    ----------
    mask : array or None
        The labels, or the instance map with ``instances``.
    types : array or None
        The nucleus-type map (``instances`` only).
    instances : bool
        ``mask`` is an instance map.
    fmt : str
        The patch format (instances are PNG only).

    Returns
    -------
    array or None
        ``mask``, or ids and types stacked ``(h, w, 2)`` (dask when either is).

    Raises
    ------
    PatchError
        Types without instances, instances not as PNG or without a mask,
        types of another shape than the instance map.
    """
    if not instances:
        if types is not None:
            raise PatchError("a type map goes with instances=True")
        return mask
    if fmt != "png":
        raise PatchError("instance patches are written as PNG (fmt='png')")
    if mask is None:
        raise PatchError("instances=True needs an instance map as mask")
    if types is None:
        return mask
    if tuple(types.shape[:2]) != tuple(mask.shape[:2]):
        raise PatchError(
            f"type map shape {tuple(types.shape)} differs from the instance map's {tuple(mask.shape)}"
        )
    lazy = isinstance(mask, da.Array) or isinstance(types, da.Array)
    stack = da.stack if lazy else np.stack
    return stack([mask.astype(np.int64), types.astype(np.int64)], -1)


def check_choices(overwrite: str, fmt: str) -> None:
    """Refuse an unknown ``overwrite`` or ``fmt``, naming the option.

    Parameters
    ----------
    overwrite : str
        ``error``, ``skip`` or ``overwrite``.
    fmt : str
        ``png`` or ``zarr``.

    Raises
    ------
    PatchError
        Either is not one of its values.
    """
    if overwrite not in OVERWRITE:
        raise PatchError(f"overwrite must be one of {OVERWRITE}, not {overwrite!r}")
    if fmt not in FORMATS:
        raise PatchError(f"fmt must be 'png' or 'zarr', not {fmt!r}")


def is_annotations(mask: Any) -> bool:
    """Whether ``mask`` is GeoJSON annotations: a ``.geojson(.gz)`` path or read ones.

    Parameters
    ----------
    mask : object
        The mask argument.

    Returns
    -------
    bool
        True for a ``.geojson`` / ``.geojson.gz`` path or
        :class:`~napari_slideseg.io.annotations.Annotations`.
    """
    from ..io.annotations import Annotations, is_annotation_file

    return isinstance(mask, Annotations) or is_annotation_file(mask)
