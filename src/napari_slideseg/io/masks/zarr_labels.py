"""Zarr label images: NGFF labels (``labels/<name>``), OME-Zarr, plain arrays, predictions.

Read lazily, block by block (dask); every pyramid level comes back in
``info["levels"]``. The class map comes from the slideseg attributes or the
NGFF ``image-label`` colours; the placement from the slideseg attributes or
the OME-Zarr scale and axis units.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, cast

import dask.array as da
import numpy as np

from ..errors import SlideSegError
from ..palette import RGB, ClassMap, MaskError
from ..placement import Placement, is_micrometer
from .metadata import with_placement

logger = logging.getLogger(__name__)


def read_zarr_store(
    p: Path, cm: ClassMap | None, label: str | None, missing: int = 0
) -> tuple[da.Array, ClassMap | None, dict[str, Any]]:
    """The labels of a zarr store, as :func:`~napari_slideseg.io.masks.read_labels` returns them.

    Parameters
    ----------
    p : Path
        The store (or a node inside one).
    cm : ClassMap or None
        The class map the caller gave; else the one the store records.
    label : str or None
        Which NGFF label image (the first by default).
    missing : int
        Blocks missing from an unfinished prediction
        (:func:`~.prediction.check_prediction`), kept in ``info["missing_blocks"]``.

    Returns
    -------
    tuple
        ``(labels, classmap, info)``: dask labels; for instance labels the
        class map is ``cm`` and ``info["type_classmap"]`` names the types.

    Raises
    ------
    MaskError
        If it is no readable zarr store or holds no 2D integer labels.
    """
    labels, zcm, info = read_zarr_labels(p, label)
    if missing:
        info["missing_blocks"] = missing
    if info.get("instances"):
        info["type_classmap"] = cm or zcm
        return labels, cm, info
    return labels, cm or zcm, info


def _ngff_attrs(node: Any) -> dict[str, Any]:
    """A zarr node's attributes, NGFF 0.5's ``ome`` member unwrapped."""
    attrs = dict(node.attrs)
    ome = attrs.get("ome")
    if isinstance(ome, dict):
        attrs = {**attrs, **ome}
    return attrs


def ngff_label_names(path: str | os.PathLike) -> list[str]:
    """Names of the NGFF label images in a store (``labels/`` listing), ``[]`` when none.

    Parameters
    ----------
    path : str or os.PathLike
        A zarr store (anything that does not open gives ``[]``).

    Returns
    -------
    list of str
        The names under ``labels/``, in the order the store lists them.
    """
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception:
        return []
    if isinstance(node, zarr.Array):
        return []
    attrs = _ngff_attrs(node)
    if "image-label" in attrs:
        return []
    names = attrs.get("labels")
    if not (isinstance(names, list) and "multiscales" not in attrs):
        try:
            group = node["labels"]
        except KeyError:
            return []
        if isinstance(group, zarr.Array):
            return []
        names = _ngff_attrs(group).get("labels")
    return [str(n) for n in names] if isinstance(names, list) else []


def _ngff_classmap(label_meta: dict[str, Any]) -> ClassMap | None:
    """A ClassMap from NGFF ``image-label`` colours (values 0..n-1) and ``class`` properties."""
    colors = {
        int(c["label-value"]): tuple(int(v) for v in c["rgba"][:3])
        for c in label_meta.get("colors") or []
        if isinstance(c, dict) and "rgba" in c and isinstance(c.get("label-value"), int)
    }
    if not colors or max(colors) >= 256 or min(colors) < 0:
        return None
    colors.setdefault(0, (0, 0, 0))
    n = max(colors) + 1
    if len(colors) != n:
        return None
    names = {
        int(p["label-value"]): str(p.get("class") or p.get("name"))
        for p in label_meta.get("properties") or []
        if isinstance(p, dict) and (p.get("class") or p.get("name"))
    }
    try:
        return ClassMap(
            tuple(names.get(i, "background" if i == 0 else f"class {i}") for i in range(n)),
            # not narrowed to triples here: ClassMap checks each colour is RGB
            cast("tuple[RGB, ...]", tuple(colors[i] for i in range(n))),
        )
    except SlideSegError as exc:
        logger.debug("NGFF image-label colours give no class map (%s)", exc)
        return None


def _ngff_properties(label_meta: dict[str, Any]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for p in label_meta.get("properties") or []:
        if isinstance(p, dict) and isinstance(p.get("label-value"), int):
            out[int(p["label-value"])] = {k: v for k, v in p.items() if k != "label-value"}
    return out


def read_zarr_labels(
    path: Path, label: str | None = None
) -> tuple[da.Array, ClassMap | None, dict[str, Any]]:
    """Labels from a zarr store: NGFF labels (``labels/<name>``), an OME-Zarr or a plain array.

    NGFF layouts read: a root whose ``labels`` group lists label images (what
    :func:`~napari_slideseg.io.export.write_ome_zarr_labels` writes; ``label``
    picks one by name, the first by default), the ``labels`` group itself, a
    label image group (``image-label`` + ``multiscales``: also the layout
    this plugin wrote before), or an image group with labels. All pyramid
    levels come back in ``info["levels"]``.

    Parameters
    ----------
    path : Path
        The store.
    label : str or None
        Which NGFF label image (its name under ``labels/``).

    Returns
    -------
    tuple
        ``(labels, classmap or None, info)``: the dask labels of the first
        level, the class map the store records, and ``info`` (``format``
        ``"zarr"`` or ``"ome-zarr"``, ``levels``, ``attrs``, placement ...).

    Raises
    ------
    MaskError
        If ``path`` is a folder but no zarr store, cannot be opened, has no
        label image ``label``, or holds no 2D integer label array.
    """
    import zarr

    node = _open_store(path)
    info: dict[str, Any] = {"format": "zarr"}
    classmap = None
    if isinstance(node, zarr.Array):
        levels = [node]
    else:
        levels, classmap = _read_group(path, node, label, info)
    arr = levels[0]
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise MaskError(f"{path}: expected a 2D integer label array, got {arr.shape} {arr.dtype}")
    info["levels"] = [da.from_zarr(a) for a in levels if a.ndim == 2]
    return info["levels"][0], classmap, info


def _open_store(path: Path) -> Any:
    """The zarr node at ``path``; refuses a folder that is no zarr store."""
    import zarr

    from ..sniff import sniff_kind

    if Path(path).is_dir() and sniff_kind(str(path)) != "zarr":
        raise MaskError(
            f"{path}: is a folder but not a zarr store (no zarr.json/.zgroup/.zarray); "
            "a mask is an image file, an RLE CSV or a zarr store"
        )
    try:
        return zarr.open(str(path), mode="r")
    except Exception as exc:
        raise MaskError(f"{path}: not a readable zarr store ({type(exc).__name__}: {exc})") from exc


def _read_group(
    path: Path, node: Any, label: str | None, info: dict[str, Any]
) -> tuple[list[Any], ClassMap | None]:
    """The levels and class map of a zarr group; fills ``info`` with what it records."""
    root_attrs = _ngff_attrs(node)
    node = _label_image(path, node, root_attrs, label, info)
    attrs = _ngff_attrs(node)
    ms = attrs.get("multiscales")
    levels = _group_levels(path, node, ms, info)
    slideseg = attrs.get("slideseg") or root_attrs.get("slideseg") or {}
    classmap = _group_classmap(attrs, slideseg, info)
    info["attrs"] = attrs
    where = Placement.from_attrs(attrs) or Placement.from_attrs(root_attrs)
    if where is None and ms:
        where = Placement.from_pixel_mpp(_ngff_mpp(ms[0]))
        where = where if where.mpp else None
    with_placement(info, where)
    return levels, classmap


def _label_image(
    path: Path, node: Any, root_attrs: dict[str, Any], label: str | None, info: dict[str, Any]
) -> Any:
    """The NGFF label image ``label`` (the first) of a store that lists some, else ``node``."""
    names = ngff_label_names(path)
    if names:
        name = label if label is not None else names[0]
        if name not in names:
            raise MaskError(f"{path}: no label image {name!r} (has {', '.join(names)})")
        listed_here = isinstance(root_attrs.get("labels"), list) and (
            "multiscales" not in root_attrs
        )
        node = node[name] if listed_here else node["labels"][name]
        info["label_name"] = name
        info["label_names"] = names
    elif label is not None:
        raise MaskError(f"{path}: holds no NGFF label images (no labels/ group)")
    return node


def _group_levels(path: Path, node: Any, ms: list[Any] | None, info: dict[str, Any]) -> list[Any]:
    """The pyramid levels of a multiscale group, else its ``labels`` or largest array."""
    import zarr

    if ms:
        levels = [node[d["path"]] for d in ms[0]["datasets"]]
        info["format"] = "ome-zarr"
        return levels
    if "labels" in node and isinstance(node["labels"], zarr.Array):
        return [node["labels"]]
    arrays = sorted((a for _, a in node.arrays()), key=lambda a: -int(np.prod(a.shape)))
    if not arrays:
        raise MaskError(f"{path}: zarr group holds no label array")
    return [arrays[0]]


def _group_classmap(
    attrs: dict[str, Any], slideseg: dict[str, Any], info: dict[str, Any]
) -> ClassMap | None:
    """The class map a group records (slideseg, else NGFF colours); NGFF properties to ``info``."""
    classmap = None
    cm = slideseg.get("classmap")
    if cm:
        classmap = ClassMap.from_dict(cm)
    label_meta = attrs.get("image-label")
    if isinstance(label_meta, dict):
        info["image_label"] = True
        if classmap is None:
            classmap = _ngff_classmap(label_meta)
        props = _ngff_properties(label_meta)
        if props:
            info["properties"] = props
    if slideseg.get("instances") or slideseg.get("kind") == "instances":
        info["instances"] = True
    return classmap


def _ngff_mpp(ms: dict[str, Any]) -> tuple[float, float] | None:
    """µm per pixel of an NGFF multiscale's first dataset (its y, x scale in micrometres)."""
    try:
        axes = ms.get("axes") or []
        units = [a.get("unit") if isinstance(a, dict) else None for a in axes][-2:]
        if len(units) != 2 or not all(u is not None and is_micrometer(u) for u in units):
            return None
        scale = None
        for t in ms["datasets"][0].get("coordinateTransformations", []):
            if t.get("type") == "scale":
                scale = t["scale"]
        for t in ms.get("coordinateTransformations", []) or []:
            if t.get("type") == "scale" and scale is not None:
                scale = [a * b for a, b in zip(scale, t["scale"], strict=False)]
        return (float(scale[-2]), float(scale[-1])) if scale else None
    except (KeyError, TypeError, ValueError, IndexError):
        return None
