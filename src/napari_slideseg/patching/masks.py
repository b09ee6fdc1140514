"""Masks aligned to a level, and instance-map patches."""

from __future__ import annotations

import os
from typing import Any

import dask.array as da
import numpy as np

from ..io.slide import Slide
from .config import PatchError


def align_mask(mask: Any, slide: Slide, level: int, name: str = "mask") -> Any:
    """Return ``mask`` at the resolution of ``level``.

    A mask must have the (y, x) shape of level 0 or of ``level``; a level-0
    mask is subsampled with nearest-neighbour steps (labels are never
    averaged). Anything else is an error naming both shapes.

    Parameters
    ----------
    mask : array
        Labels (numpy or dask), ``(h, w)`` or ``(h, w, c)``.
    slide : Slide
        The slide the mask belongs to.
    level : int
        The level cut.
    name : str
        What the error calls the mask.

    Returns
    -------
    array
        ``mask`` itself, or its nearest-neighbour subsample (dask stays lazy).

    Raises
    ------
    PatchError
        The shape matches neither level 0 nor ``level``.
    """
    check_mask_shape(mask, slide, level, name)
    mh, mw = mask.shape[:2]
    lh, lw = slide.levels[level].shape[:2]
    h0, w0 = slide.levels[0].shape[:2]
    if (mh, mw) == (lh, lw):
        return mask
    if (mh, mw) == (h0, w0):
        ys = np.minimum((np.arange(lh) * (h0 / lh)).astype(np.int64), h0 - 1)
        xs = np.minimum((np.arange(lw) * (w0 / lw)).astype(np.int64), w0 - 1)
        if isinstance(mask, da.Array):
            return mask[ys][:, xs]
        return np.asarray(mask)[np.ix_(ys, xs)]
    raise AssertionError("unreachable: check_mask_shape passed")


def check_mask_shape(mask: Any, slide: Slide, level: int, name: str = "mask") -> None:
    """Refuse a mask whose (y, x) shape is neither level 0's nor ``level``'s, naming both.

    Parameters
    ----------
    mask : array
        The labels.
    slide : Slide
        The slide.
    level : int
        The level cut.
    name : str
        What the error calls the mask.

    Raises
    ------
    PatchError
        The shapes do not match.
    """
    mh, mw = mask.shape[:2]
    lh, lw = slide.levels[level].shape[:2]
    h0, w0 = slide.levels[0].shape[:2]
    if (mh, mw) in ((lh, lw), (h0, w0)):
        return
    sizes = f"{w0} x {h0} at level 0" + ("" if level == 0 else f" and {lw} x {lh} at level {level}")
    raise PatchError(
        f"{name} is {mw} x {mh} (width x height, shape {tuple(mask.shape)}) but slide "
        f"{slide.name} is {sizes}; a mask must have the size of level 0 or of the level cut"
    )


def instance_patch(m: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A patch of an instance map (plus optional type channel) as uint16 ids 1..N and uint8 types.

    Parameters
    ----------
    m : numpy.ndarray
        ``(s, s)`` instance ids, or ``(s, s, 2)`` ids and types.

    Returns
    -------
    tuple
        ``(ids, types)``: ids renumbered 1..N in uint16; types in uint8, or
        ``None`` without a type channel.

    Raises
    ------
    PatchError
        The patch holds more than 65535 instances.
    """
    from ..instances.targets import relabel_sequential

    inst = m[..., 0] if m.ndim == 3 else m
    inst = relabel_sequential(np.asarray(inst))
    if inst.max() > 65535:
        raise PatchError(f"a patch holds {inst.max()} instances; PNG masks hold at most 65535")
    types = np.asarray(m[..., 1]).astype(np.uint8) if m.ndim == 3 else None
    return inst.astype(np.uint16), types


def annotation_mask(
    source: Any,
    slide: Slide,
    level: int,
    classmap: Any,
    unannotated: str = "background",
) -> tuple[Any, Any, dict[str, Any]]:
    """A lazy class mask of GeoJSON annotations at the resolution of ``level``.

    The mask has the level's shape and is rasterised chunk by chunk
    (:func:`~napari_slideseg.io.annotations.annotation_labels`, pixel
    centres on the level's grid in level-0 coordinates), so no level-0
    array is made for a coarser level.

    Parameters
    ----------
    source : str or os.PathLike or Annotations
        A ``.geojson`` / ``.geojson.gz`` file (read with ``classmap``), or
        annotations already read (e.g. with ``skip_unknown=True``).
    slide : Slide
        The slide the annotations were drawn on (level-0 pixel coordinates).
    level : int
        The level cut.
    classmap : ClassMap or str or os.PathLike or None
        The classes (a map, a preset name or a JSON file); needed for a file.
    unannotated : str
        ``"background"`` or ``"ignore"`` outside every annotation.

    Returns
    -------
    tuple
        ``(mask, classmap, record)``: the uint8 dask mask, the annotations'
        class map, and what to record of them
        (:meth:`~napari_slideseg.io.annotations.Annotations.summary` with
        the absolute ``path``, ``unannotated`` and ``ignore_index``).

    Raises
    ------
    PatchError
        A file without a class map, or annotations read with another class
        map than ``classmap``.
    SlideSegError
        The file cannot be read, a class is not in the map
        (:class:`~napari_slideseg.io.annotations.AnnotationError`).
    """
    from ..io.annotations import IGNORE_INDEX, Annotations, annotation_labels, read_annotations
    from ..io.masks import resolve_classmap

    cm = resolve_classmap(classmap)
    if isinstance(source, Annotations):
        ann = source
        if cm is not None and cm != ann.classmap:
            raise PatchError(
                f"{ann.path}: the annotations were read with class map {ann.classmap.names} "
                f"but classmap is {cm.names}"
            )
    else:
        if cm is None:
            raise PatchError(
                f"{source}: a GeoJSON annotation mask needs a class map (classmap=..., "
                "--classmap) naming its classes"
            )
        ann = read_annotations(source, cm)
    lh, lw = slide.levels[level].shape[:2]
    h0, w0 = slide.levels[0].shape[:2]
    mask = annotation_labels(ann, (lh, lw), downsample=(h0 / lh, w0 / lw), unannotated=unannotated)
    record = {
        **ann.summary(),
        "path": os.path.abspath(ann.path),
        "unannotated": unannotated,
        "ignore_index": IGNORE_INDEX if unannotated == "ignore" else None,
    }
    return mask, ann.classmap, record
