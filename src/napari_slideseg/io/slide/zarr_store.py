"""The zarr backend: OME-Zarr (NGFF 0.4 and 0.5 multiscales) and plain zarr arrays or groups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import dask.array as da
import numpy as np

from ..errors import SlideError
from .levels import display_range, lazy_array, make_slide, to_yxc
from .model import Slide
from .mpp import ngff_mpp

if TYPE_CHECKING:
    import zarr


def zarr_levels(
    store_path: str, report_path: str
) -> tuple[list[da.Array], tuple[float, float] | None, dict[str, Any]]:
    """The levels of a zarr store, largest first: NGFF multiscales, a group's arrays or one array.

    Parameters
    ----------
    store_path : str
        The zarr array or group to open.
    report_path : str
        The path named in errors (the slide's, when the store is its cache).

    Returns
    -------
    tuple
        ``(levels, mpp, metadata)``: lazy ``(y, x[, c])`` arrays, microns
        per pixel ``(y, x)`` from NGFF scales (or ``None``), and what was
        found (``format``, ``axes``, ``ngff_version``, ``slideseg``).

    Raises
    ------
    SlideError
        When the store cannot be read, lists a missing dataset, holds no
        arrays or its axes are not an image's.
    """
    import zarr

    try:
        node = zarr.open(store_path, mode="r")
    except Exception as exc:
        raise SlideError(
            report_path, f"is not a readable zarr store ({type(exc).__name__}: {exc})"
        ) from exc
    meta: dict[str, Any] = {"format": "zarr"}
    mpp = None
    arrays: list[zarr.Array]
    if isinstance(node, zarr.Array):
        arrays = [node]
        axes = _guess_axes(node.shape)
    else:
        # zarr types attrs as JSON; the store's metadata is free-form, read it as Any
        attrs: dict[str, Any] = dict(node.attrs)
        ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
        if ms:
            ms0 = ms[0]
            meta["format"] = "ome-zarr"
            meta["ngff_version"] = ms0.get("version") or attrs.get("ome", {}).get("version")
            names = [a["name"] if isinstance(a, dict) else a for a in ms0.get("axes", [])]
            try:
                # NGFF datasets are arrays (zarr types a member as Array | Group)
                arrays = [cast("zarr.Array", node[d["path"]]) for d in ms0["datasets"]]
            except KeyError as exc:
                raise SlideError(
                    report_path, f"OME-Zarr multiscales lists a missing dataset {exc}"
                ) from exc
            axes = "".join(n.upper() for n in names) if names else _guess_axes(arrays[0].shape)
            mpp = ngff_mpp(ms0, names)
        else:
            arrays = [a for _, a in node.arrays()]
            if not arrays:
                raise SlideError(report_path, "is a zarr group with no arrays")
            arrays.sort(key=lambda a: -int(np.prod(a.shape)))
            arrays = [a for a in arrays if a.ndim == arrays[0].ndim]
            axes = _guess_axes(arrays[0].shape)
        if "slideseg" in attrs:
            meta["slideseg"] = attrs["slideseg"]
    levels = []
    for i, a in enumerate(arrays):
        arr = lazy_array(a, report_path, a.chunks, name=f"zarr-{abs(hash((store_path, i)))}")
        levels.append(to_yxc(arr, axes, report_path))
    meta["axes"] = axes
    return levels, mpp, meta


def _guess_axes(shape: Sequence[int]) -> str:
    if len(shape) == 2:
        return "YX"
    if len(shape) == 3:
        return "YXC" if shape[2] <= 4 else "CYX"
    return "".join("TZCYX"[-len(shape) :])


def open_zarr(path: str) -> Slide:
    """Open a zarr or OME-Zarr store as a :class:`~.model.Slide`.

    Parameters
    ----------
    path : str
        The store's folder.

    Returns
    -------
    Slide
        The slide (backend ``"zarr"``).

    Raises
    ------
    SlideError
        See :func:`zarr_levels`.
    """
    levels, mpp, meta = zarr_levels(path, path)
    meta["display_range"] = display_range(levels[0].dtype, None)
    return make_slide(path, levels, mpp, "zarr", meta)
