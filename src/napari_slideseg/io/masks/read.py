"""The dispatcher: :func:`read_labels` picks the reader for a file's format."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..palette import MIN_CLASS_SHARE, ClassMap, MaskError
from .classmaps import resolve_classmap
from .image import read_mask_image
from .instances import instance_marker, read_id_map
from .prediction import check_prediction
from .rle_csv import read_rle_labels
from .zarr_labels import read_zarr_store


def read_labels(
    path: str | os.PathLike,
    *,
    classmap: ClassMap | str | None = None,
    shape: tuple[int, int] | None = None,
    rle_order: str | None = None,
    tolerance: float | None = None,
    label: str | None = None,
    partial: bool = False,
    min_share: float | None = None,
) -> tuple[Any, ClassMap | None, dict[str, Any]]:
    """Read a label image from a colour mask, index mask, RLE CSV, instance map or zarr.

    Parameters
    ----------
    path
        ``.png``/``.tif`` mask, ``.csv`` RLE, or a zarr directory.
    classmap
        A :class:`ClassMap` or a preset name (``biopsy6``, ``wsi3``,
        ``binary``) or a JSON file; inferred from the mask when omitted.
    shape
        ``(height, width)`` for RLE files without shape columns.
    rle_order
        ``"col"`` or ``"row"`` for RLE files that don't record their order.
    tolerance
        Opt-in nearest-colour tolerance for JPEG-compressed colour masks.
    label
        Which NGFF label image of a zarr store (its name under ``labels/``);
        the first by default.
    partial
        Take a prediction folder whose run has not finished (its missing
        blocks read as background, ``info["missing_blocks"]`` says how many,
        with a :class:`PartialPredictionWarning`); by default it is refused
        with :class:`IncompletePredictionError`.
    min_share
        For a colour mask read without a class map: colours under this share
        of the pixels are refused rather than made classes of their own
        (default :data:`~napari_slideseg.io.palette.MIN_CLASS_SHARE`, 0.1 %;
        ``0`` makes every colour a class).

    Returns
    -------
    tuple
        ``(labels, classmap or None, info)``; ``labels`` is NumPy, or dask for
        zarr input (``info["levels"]`` holds every pyramid level).
        Instance maps (object ids, not classes: an instance-layout RLE CSV,
        a ``.npy``, a 16-bit id PNG or id TIFF this plugin wrote, OME-Zarr
        labels marked as instances) come back with ``classmap`` None (or
        the one passed) and ``info["instances"]`` True; ``info["type_classmap"]`` names the
        objects' types where the file records them (with
        ``info["instance_classes"]`` or ``info["properties"]`` per id).

    Raises
    ------
    MaskError
        Naming the file: missing, unreadable, unknown colours, label values
        without a class, no such NGFF label image, ...
    IncompletePredictionError
        For an unfinished prediction folder without ``partial``.
    SlideSegError
        For a bad ``min_share`` or an unusable instance map.
    """
    p = Path(path)
    p = Path(path)
    if not p.exists():
        raise MaskError(f"{p}: no such file or directory")
    from ...validate import fraction

    share = MIN_CLASS_SHARE if min_share is None else fraction("min_share", min_share)
    cm = resolve_classmap(classmap)
    name = p.name.lower()
    if p.is_dir() or name.endswith(".zarr"):
        # here, not in read_zarr_store: its warning names read_labels' caller
        missing = check_prediction(p, partial)
        return read_zarr_store(p, cm, label, missing)
    if name.endswith(".csv"):
        return read_rle_labels(p, cm, rle_order, shape)
    if name.endswith(".npy") or instance_marker(p) is not None:
        return read_id_map(p)
    return read_mask_image(p, cm, tolerance, share)
